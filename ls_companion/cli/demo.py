"""``ls-companion demo``: the whole loop on embedded defaults, on this machine, in a few minutes.

Starts Label Studio (SQLite, from .venv-ls) and the ML backend on local ports, then runs
``ls_companion.demo.loop``: bootstrap, active-learning rounds answered by SIMULATED annotators,
retraining, sync, report. No Redis: everything runs inline.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import typer

from ls_companion.cli.app import app, cli_context, console, emit, err_console
from ls_companion.client import LabelStudioClient
from ls_companion.demo.loop import DEMO_SPEC, DemoPlan, DemoResult, run_demo_loop
from ls_companion.localserver import (
    DEFAULT_LS_BIN,
    LabelStudioProcess,
    MLBackendProcess,
    start_label_studio,
    start_ml_backend,
)
from ls_companion.settings import Settings

BACKEND_USER = "label-studio"


def _secret(folder: Path, name: str) -> str:
    """One secret per demo data folder, so a second demo run finds its projects and models again."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(20))
        path.chmod(0o600)
    return path.read_text().strip()


def _report_writer(client: LabelStudioClient, settings: Settings, out: Path) -> Callable[[int], Path]:
    def write(project_id: int) -> Path:
        from ls_companion.report import write_report

        return write_report(client, settings, project_id, out).html

    return write


def _print_summary(result: DemoResult, ls: LabelStudioProcess, backend: MLBackendProcess, token: str) -> None:
    versions = ", ".join(result.model_versions) or "none"
    lines = [
        "",
        f"Label Studio:  {ls.url}   user [bold]{ls.username}[/bold]  password [bold]{ls.password}[/bold]",
        f"Project:       {result.project_url}  (Data Manager: columns lsc_agreement, lsc_consensus, ...)",
        f"Label stream:  {ls.url}/projects/{result.project_id}/data?labeling=1  (least certain first)",
        f"ML backend:    {backend.url}  (models in {backend.model_dir})",
        f"API token:     {token}",
        f"Report:        {result.report_html}" if result.report_html is not None else "",
        f"Simulated:     {result.annotations} annotations by 4 simulated annotators; models {versions}",
    ]
    for line in lines:
        console.print(line, soft_wrap=True)  # URLs stay whole, to be copied


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    port: int = typer.Option(8080, help="Port of the local Label Studio."),
    backend_port: int = typer.Option(9090, help="Port of the local ML backend."),
    keep: bool = typer.Option(True, "--keep/--no-keep", help="Leave the servers running until Ctrl-C."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the demo's data first (a new Label Studio)."),
    spec: Path = typer.Option(DEMO_SPEC, help="The project spec to bootstrap."),
    ls_bin: Path = typer.Option(DEFAULT_LS_BIN, help="The label-studio executable (from .venv-ls)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run the whole loop locally: Label Studio, ML backend, active learning, simulated annotators,
    retraining, quality sync and report. Inline mode, no Redis, no Docker."""
    cli = cli_context(ctx)
    folder = (cli.settings.data_dir / "demo").resolve()
    if fresh and folder.exists():
        shutil.rmtree(folder)
    token, password = _secret(folder, "admin-token"), _secret(folder, "backend-password")
    webhook_secret = _secret(folder, "webhook-secret")
    err_console.print(f"Starting Label Studio on http://127.0.0.1:{port} (data in {folder}) ...")
    ls = start_label_studio(folder / "label-studio", token=token, port=port, ls_bin=ls_bin)
    backend: MLBackendProcess | None = None
    try:
        backend_env = {
            "BASIC_AUTH_USER": BACKEND_USER,
            "BASIC_AUTH_PASS": password,
            "WEBHOOK_SECRET": webhook_secret,
            # The demo presses "Start training" itself at the end of each round.
            "TRAIN_EVERY_N_ANNOTATIONS": "100000",
            "TRAIN_DEBOUNCE_SECONDS": "86400",
        }
        err_console.print(f"Starting the ML backend on http://127.0.0.1:{backend_port} ...")
        backend = start_ml_backend(
            folder / "models",
            label_studio_url=ls.url,
            api_key=token,
            port=backend_port,
            env=backend_env,
            base_env=os.environ,
        )
        settings = Settings(
            **{
                **cli.settings.model_dump(),
                "label_studio_url": ls.url,
                "label_studio_api_key": token,
                "ml_backend_url": backend.url,
                "ml_backend_basic_auth_user": BACKEND_USER,
                "ml_backend_basic_auth_pass": password,
                "ml_backend_webhook_secret": webhook_secret,
                "redis_url": None,  # inline mode: the embedded default
                "data_dir": folder / "companion",
            }
        )
        client = LabelStudioClient.from_settings(settings)
        result = run_demo_loop(
            client,
            settings,
            DemoPlan(spec=spec),
            say=lambda message: err_console.print(
                f"[dim]demo:[/dim] {message}", highlight=False, soft_wrap=True
            ),
            write_report=_report_writer(client, settings, folder / "report"),
        )
        emit(result.to_json(), as_json, lambda _: _print_summary(result, ls, backend, token))
        if keep:
            err_console.print("\nThe servers keep running. Press Ctrl-C to stop them.")
            while ls.process is not None and ls.process.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if backend is not None:
            backend.stop()
        ls.stop()
