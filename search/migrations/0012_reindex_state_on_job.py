"""One record per reindex: its state (target and previous model, cursor, counts, gate verdict, status)
moves from the ReindexJob row onto the Job that ran it (its result), and ReindexJob goes. Every reindex
row that a job names is copied, finished or not, so an unfinished one resumes from its cursor and a
finished one still shows its gate verdict in the admin."""

from django.db import migrations

# ReindexJob statuses with no counterpart in the result's status: the job's own state says it ended.
STATUS = {"queued": "running", "running": "running", "evaluating": "evaluating"}


def copy_reindex_state(apps, schema_editor):
    Job = apps.get_model("search", "Job")
    ReindexJob = apps.get_model("search", "ReindexJob")
    for job in Job.objects.filter(kind="reindex"):
        work_id = (job.result or {}).get("reindex_job")
        work = (
            ReindexJob.objects.filter(pk=work_id).select_related("model_version", "previous_version").first()
        )
        if work is None:
            continue
        state = {
            "model_version": work.model_version.version,
            "previous_version": work.previous_version.version if work.previous_version else None,
            "status": STATUS.get(work.status, work.status),
            "total": work.total,
            "indexed": work.done,
            "failed": work.failed,
            "cursor": work.cursor,
            "gate": work.gate,
        }
        result = {key: value for key, value in job.result.items() if key != "reindex_job"}
        Job.objects.filter(pk=job.pk).update(result={**result, **state})


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0011_search_log_text_kind"),
    ]

    operations = [
        migrations.RunPython(copy_reindex_state, migrations.RunPython.noop),
        migrations.DeleteModel(name="ReindexJob"),
    ]
