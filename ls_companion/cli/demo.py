"""``ls-companion demo``: start a local Label Studio and bootstrap the example project.

The full loop (backend, active learning, simulated annotators, sync, report) grows here in issue 7.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import typer

from ls_companion.bootstrap import bootstrap, load_spec
from ls_companion.cli.app import app, cli_context, console, err_console
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import DEFAULT_LS_BIN, start_label_studio

EXAMPLE_SPEC = Path(__file__).resolve().parents[2] / "examples" / "sentiment.yaml"


def _demo_token(folder: Path) -> str:
    """One admin token per demo data folder, so a second demo run finds its projects again."""
    path = folder / "admin-token"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(20))
    return path.read_text().strip()


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    port: int = typer.Option(8080, help="Port of the local Label Studio."),
    keep: bool = typer.Option(True, "--keep/--no-keep", help="Leave the servers running until Ctrl-C."),
    spec: Path = typer.Option(EXAMPLE_SPEC, help="The project spec to bootstrap."),
    ls_bin: Path = typer.Option(DEFAULT_LS_BIN, help="The label-studio executable (from .venv-ls)."),
) -> None:
    """Start Label Studio locally (SQLite, from .venv-ls) and bootstrap the example project."""
    cli = cli_context(ctx)
    folder = (cli.settings.data_dir / "demo" / "label-studio").resolve()
    token = _demo_token(folder)
    err_console.print(f"Starting Label Studio on http://127.0.0.1:{port} (data in {folder}) ...")
    server = start_label_studio(folder, token=token, port=port, ls_bin=ls_bin)
    try:
        client = LabelStudioClient(server.url, token)
        result = bootstrap(client, load_spec(spec, cli.settings))
        console.print(f"\nLabel Studio: {server.url}  (user {server.username}, password {server.password})")
        console.print(f"Project:      {result.project_url}")
        console.print(f"API token:    {token}")
        if keep:
            console.print("\nPress Ctrl-C to stop.")
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
