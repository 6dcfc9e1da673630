"""Django-free machine learning code: preprocessing, model, training, evaluation, export, serving."""
