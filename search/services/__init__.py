"""Every write of the search app, one module per behaviour (jobs, which adapt these, are search/jobs/):

- indexing.py: embed images and upsert them into the collections that take writes; mark the rows.
- sweeping.py: the repair path: what the sweeper re-enqueues, and backoff after transient failures.
- duplicates.py: flag products whose image is nearly identical to another product's.
- payload_sync.py: keep stored payloads in step with product edits; remove points of deleted images.
- model_versions.py: register, activate and bootstrap model versions.
- reindex.py: move the index to a new model with no downtime (fill, gate, promote), and roll back.
- gate.py: the evaluation gate that compares a candidate with the active model, and its verdict in words.
- calibration.py: calibrate a model not trained here (the pretrained one) from views of catalog photos.
- compact.py: a compact pretrained model, its projection fitted on the catalog's own photos.
- index_building.py: build a collection's graph off the request path and choose the beam it is searched
  with (measured recall@10 against exact search).
- reconcile.py: compare the catalog with the store and repair both ways.
- training.py: train a candidate model on the catalog.
- locks.py: a lock across threads and processes (the first model is made once).
- searching.py: the similarity search itself, by photo, product, image or words (data in, data out;
  presentation is the API's).
- text_index.py: the text index (one sparse point per product) that search by words reads, kept in
  step with the catalog and the text read on its photos.
- query_images.py: query photos given by URL, fetched through the catalog's download guard.
- search_logs.py: the search log: searches answered, clicks on their results, shoppers' photos' retention.
- image_text.py: the text read on catalog photos (OCR), stored per image and re-read when the photo changes.
- text_rerank.py: a photo's answer re-ranked by the words read on the photo, when it is not clear-cut.
- balance.py: balanced answers for a catalog with one photo per product: an offset per product fitted on
  the logged query vectors of photo searches, and the answer's order by similarity plus offset.
- int8_photos.py: the stored catalog photos an int8 export is quantized and checked on.
"""
