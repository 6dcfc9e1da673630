"""Jobs: long work (train, reindex, rollback, reconcile, import, index, ...) kept as one ``Job`` row each
and run by whoever may run it.

- registry.py: what a kind declares (``JobKind``), the ``job_kind`` decorator, the lookup, ``JobContext``
  and the errors a kind raises;
- records.py: the record's life cycle: submit, claim, progress, log, end, cancel, dead runners;
- runner.py: what runs a claimed job to its end (``job_run``): the ``ctx``, the heartbeat, the end state;
- placement.py: whether this process runs a job now or hands it over; the embedded-or-Celery choice is
  made by the workers app (workers/apps.py), never read here;
- progress.py: a job's pace and its log tail;
- steps.py: steps several kinds share; training.py: training options and the training process's
  reporting (the "train" kind follows that process);
- kinds/: one module per kind, registered when the search app is ready.
"""
