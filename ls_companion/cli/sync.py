"""``sync``, ``worker``, ``schedule`` and ``status``: the loop that keeps a project's quality up to date."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ls_companion.cli.app import CliContext, app, cli_context, emit, err_console
from ls_companion.errors import CompanionError, ConfigError, InputError, QueueUnavailable
from ls_companion.sync.options import SyncOptions

log = logging.getLogger(__name__)
WAIT_POLL = 0.5


# -- shared ------------------------------------------------------------------------------------------------


def _options(
    cli: CliContext, project: int | None, spec: Path | None, overrides: dict[str, Any]
) -> tuple[int, SyncOptions]:
    """The project id and sync options from ``--project`` / ``--spec`` and the command's overrides."""
    from ls_companion.bootstrap.spec import read_spec
    from ls_companion.sync.options import spec_options

    options = SyncOptions()
    if spec is not None:
        parsed = read_spec(spec)
        options = spec_options(parsed.sync, spec.resolve().parent)
        if project is None:
            project = _project_of(cli, parsed.title)
    if project is None:
        raise InputError("name the project: --project ID or --spec FILE")
    wanted = {k: v for k, v in overrides.items() if v is not None}
    if wanted:
        from ls_companion.sync.options import parse_options

        options = parse_options({**options.model_dump(mode="json"), **wanted})
    return project, options


def _project_of(cli: CliContext, title: str) -> int:
    """The id of the one project titled like the spec."""
    from ls_companion.bootstrap.apply import project_titled

    project = project_titled(cli.client, title)
    if project is None:
        raise InputError(f"no project titled {title!r}: run `ls-companion bootstrap` first")
    return project.id


def _redis(cli: CliContext) -> Any:
    from ls_companion.sync.queues import connect

    if not cli.settings.redis_url:
        raise ConfigError(
            "REDIS_URL is not set: queues need Redis (inline mode: `ls-companion sync --project ID`)"
        )
    return connect(cli.settings.redis_url)


def _wait_for(connection: Any, job_id: str, timeout: float) -> dict[str, Any]:
    """The job's result once it finished; its one-line reason as an error once it failed for good."""
    from rq.job import Job, JobStatus

    from ls_companion.sync.queues import one_line_reason

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=connection)
        status = job.get_status()
        if status == JobStatus.FINISHED:
            result = job.return_value()
            return dict(result) if isinstance(result, dict) else {"result": result}
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            latest = job.latest_result()
            raise CompanionError(
                f"job {job_id} failed: {one_line_reason(latest.exc_string if latest else None)}"
            )
        time.sleep(WAIT_POLL)
    raise CompanionError(f"job {job_id} did not finish within {timeout:.0f} s (see `ls-companion status`)")


def _render_sync(result: dict[str, Any]) -> Callable[[Console], None]:
    def human(out: Console) -> None:
        if "skipped" in result:
            out.print(
                f"Project {result['project_id']}: skipped: {result['skipped']}",
                highlight=False,
                soft_wrap=True,
            )
            return
        if "job_id" in result and "tasks_listed" not in result:
            verb = "already queued" if result.get("already_pending") else "queued"
            out.print(
                f"Sync of project {result['project_id']} {verb}: job {result['job_id']}",
                highlight=False,
                soft_wrap=True,
            )
            return
        scope = "full" if result["full"] else f"since {result['listed_since']}"
        out.print(
            f"Project {result['project_id']} synced ({result['mode']}, {scope}) in {result['seconds']} s",
            highlight=False,
            soft_wrap=True,
        )
        out.print(
            f"  {result['tasks_listed']} tasks listed, {result['tasks_written']} written to the store "
            f"({result['annotations_new']} new annotations, {result['tasks_removed']} removed), "
            f"{result['patches']} PATCH",
            highlight=False,
            soft_wrap=True,
        )
        out.print(
            f"  store: {result['tasks_stored']} tasks, {result['annotations_stored']} annotations; "
            f"watermark {result['watermark_after']}",
            highlight=False,
            soft_wrap=True,
        )
        quality = result.get("quality") or {}
        if "skipped" in quality:
            out.print(f"  quality: {quality['skipped']}", highlight=False, soft_wrap=True)
        elif quality:
            out.print(
                f"  quality: mean agreement {quality.get('mean_agreement')}, "
                f"{quality.get('low_agreement_tasks')} low-agreement tasks",
                highlight=False,
                soft_wrap=True,
            )
        for alert in result.get("alerts_new") or []:
            from ls_companion.sync.alerts import describe

            out.print(f"  [yellow]drift alert:[/yellow] {describe(alert)}", highlight=False, soft_wrap=True)
        for step in ("train", "topup"):
            if result.get(step):
                out.print(f"  {step}: {result[step]}", highlight=False, soft_wrap=True)

    return human


# -- sync --------------------------------------------------------------------------------------------------


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    project: int | None = typer.Option(None, "--project", "-p", help="Project id."),
    spec: Path | None = typer.Option(None, "--spec", help="Project spec: its title and its `sync:` options."),
    full: bool = typer.Option(
        False, "--full", help="List every task (notices deleted tasks, refreshes all metrics)."
    ),
    inline: bool = typer.Option(False, "--inline", help="Run here even when REDIS_URL is set."),
    wait: bool = typer.Option(False, "--wait", help="Queued mode: wait for the job and print its result."),
    export: Path | None = typer.Option(
        None, "--export", help="Then write the store as a Label Studio JSON export."
    ),
    retrain_after: int | None = typer.Option(
        None, "--retrain-after", help="New annotations per training (0: never)."
    ),
    mirror: list[str] | None = typer.Option(
        None, "--mirror", help="Quality key to mirror into data as lsc_<key>."
    ),
    alert_webhook: str | None = typer.Option(
        None, "--alert-webhook", help="POST new drift alerts to this URL."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pull new annotations, score them, write quality into task meta; inline without REDIS_URL, else queued."""
    from ls_companion.sync.engine import export_snapshot, sync_inline

    cli = cli_context(ctx)
    overrides = {"retrain_after": retrain_after, "mirror": mirror or None, "alert_webhook": alert_webhook}
    project_id, options = _options(cli, project, spec, overrides)
    if inline or not cli.settings.redis_url:
        payload = sync_inline(cli.settings, cli.client, project_id, options, full=full).to_json()
    else:
        from ls_companion.sync.queues import enqueue_sync, redis_errors

        try:
            connection = _redis(cli)
        except QueueUnavailable as exc:
            raise QueueUnavailable(f"{exc}; `--inline` syncs without Redis") from None
        with redis_errors(cli.settings.redis_url):
            queued = enqueue_sync(connection, project_id, options, full=full)
            payload = {"project_id": project_id, **queued.to_json()}
            if wait or export is not None:
                payload = _wait_for(
                    connection, queued.job_id, options.job_timeout * (options.job_retries + 1)
                )
    if export is not None:
        payload["exported"] = {
            "path": str(export),
            "tasks": export_snapshot(cli.settings, project_id, export),
        }
    emit(payload, as_json, _render_sync(payload))
    if export is not None and not as_json:
        console_line = f"  exported {payload['exported']['tasks']} tasks to {export}"
        sys.stdout.write(console_line + "\n")


# -- worker ------------------------------------------------------------------------------------------------


@app.command("worker")
def worker_command(
    ctx: typer.Context,
    queue: list[str] | None = typer.Option(
        None, "--queue", "-q", help="Queue to work (sync, select, train); default all."
    ),
    burst: bool = typer.Option(False, "--burst", help="Quit once the queues are empty."),
    name: str | None = typer.Option(None, "--name", help="Worker name (unique); default generated."),
    maintenance_interval: int = typer.Option(
        60, "--maintenance-interval", min=1, help="Seconds between looks for jobs of dead workers."
    ),
    monitor_interval: int = typer.Option(10, "--monitor-interval", min=1, help="Seconds between heartbeats."),
) -> None:
    """Run an rq worker for the sync, select and train queues (needs REDIS_URL)."""
    from ls_companion.sync.jobs import run_worker

    cli = cli_context(ctx)
    cli.settings.require_api_key()
    connection = _redis(cli)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    run_worker(
        cli.settings,
        connection,
        queue or [],
        burst=burst,
        name=name,
        maintenance_interval=maintenance_interval,
        monitor_interval=monitor_interval,
        logging_level="INFO" if level == "WARNING" else level,
    )


# -- schedule ----------------------------------------------------------------------------------------------


@app.command("schedule")
def schedule_command(
    ctx: typer.Context,
    specs: list[Path] | None = typer.Argument(
        None, help="Project specs: each project syncs per its `sync:` section."
    ),
    project: list[int] | None = typer.Option(None, "--project", "-p", help="Project id (with --every)."),
    every: int = typer.Option(300, "--every", min=1, help="Seconds between syncs of --project projects."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the entries and exit."),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: print the entries as JSON."),
) -> None:
    """Run rq's cron scheduler: one sync entry per project, until stopped (needs REDIS_URL)."""
    from ls_companion.bootstrap.spec import read_spec
    from ls_companion.sync.jobs import ScheduleEntry, build_scheduler
    from ls_companion.sync.options import spec_options

    cli = cli_context(ctx)
    entries = []
    for path in specs or []:
        parsed = read_spec(path)
        options = spec_options(parsed.sync, path.resolve().parent)
        entries.append(ScheduleEntry(_project_of(cli, parsed.title), options, str(path)))
    entries += [ScheduleEntry(pid, SyncOptions(interval=every), "command line") for pid in project or []]
    if not entries:
        raise InputError("nothing to schedule: give spec files or --project ID")
    listing = [entry.to_json() for entry in entries]
    if dry_run:
        emit(listing, as_json, lambda out: out.print("\n".join(map(str, listing)), highlight=False))
        return
    connection = _redis(cli)
    for entry in listing:
        err_console.print(
            f"scheduling project {entry['project_id']} every {entry['every_seconds']} s ({entry['source']})",
            highlight=False,
        )
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    build_scheduler(connection, entries, logging_level="INFO" if level == "WARNING" else level).start()


# -- status ------------------------------------------------------------------------------------------------


def _project_lines(p: dict[str, Any]) -> list[str]:
    last = p["last"]
    if p["last_sync"] is None:
        return [f"project {p['project_id']}: never synced"]
    return [
        f"project {p['project_id']}: last sync {p['last_sync']} ({p['last_mode']}), {p['syncs']} syncs, "
        f"watermark {p['watermark']}",
        f"  last run: {last['tasks_listed']} listed, {last['tasks_written']} written, "
        f"{last['patches']} PATCH in {last['seconds']} s; totals: {p['tasks_written_total']} tasks written, "
        f"{p['patches_total']} PATCH",
        f"  store: {p['tasks_stored']} tasks, {p['annotations_stored']} annotations; "
        f"{p['annotations_since_train']} new annotations since the last training request",
    ]


def _render_status(payload: dict[str, Any]) -> Callable[[Console], None]:
    from ls_companion.sync.alerts import describe

    def human(out: Console) -> None:
        if not payload["projects"]:
            out.print(f"no synced project under {payload['data_dir']}", highlight=False)
        for p in payload["projects"]:
            for text in _project_lines(p):
                out.print(text, highlight=False, soft_wrap=True)
            for alert in p["drift_alerts"]:
                out.print(f"  [yellow]drift:[/yellow] {describe(alert)}", highlight=False, soft_wrap=True)
        if not payload["redis"]:
            out.print("queues: inline mode (REDIS_URL is not set)")
            return
        for name, d in payload["queues"].items():
            out.print(
                f"queue {name}: {d['queued']} queued, {d['started']} running, {d['scheduled']} scheduled, "
                f"{d['failed']} failed",
                highlight=False,
            )
        for entry in payload["schedules"]:
            out.print(
                f"schedule: {entry['name']} every {entry['every_seconds']} s, next {entry['next_enqueue']}",
                highlight=False,
                soft_wrap=True,
            )
        for job in payload["failed_jobs"]:
            out.print(
                f"[red]failed[/red] {job['queue']} job {job['job_id']} (project {job['project_id']}, "
                f"{job['ended_at']}): {job['reason']}",
                highlight=False,
                soft_wrap=True,
            )

    return human


@app.command("status")
def status_command(
    ctx: typer.Context,
    project: list[int] | None = typer.Option(None, "--project", "-p", help="Only these projects."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Per project: last sync, watermark, tasks written, PATCH count, drift alerts; queues and failed jobs."""
    from ls_companion.sync.queues import redis_errors
    from ls_companion.sync.state import collect_status

    cli = cli_context(ctx)
    connection = _redis(cli) if cli.settings.redis_url else None
    with redis_errors(cli.settings.redis_url or ""):
        payload = collect_status(cli.settings.data_dir, connection, project or [])
    emit(payload, as_json, _render_status(payload))
