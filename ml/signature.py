"""The serving signature's names, which every runtime of an exported version answers to: the SavedModel
(ml.export writes it), its TensorFlow Lite form (ml.tflite) and the clients (ml.serving). Apart from
both writers so that neither imports the other for them."""

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
