"""Every kind of job, one module each; importing this package registers them all (search/apps.py does,
once, when the app is ready). A kind imports the registry and the services it adapts, never another
kind: steps several kinds take are in search/jobs/steps.py. A new kind is one more module here and one
more line below."""

from search.jobs.kinds import (  # noqa: F401  (each module registers its kind)
    balance,
    compact_pretrained,
    import_catalog,
    index_pending,
    optimize_index,
    reconcile,
    reindex,
    rollback,
    text_index,
    train,
)
