"""The Typer application, the shared command context, and the one place errors become messages."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from ls_companion import __version__
from ls_companion.client import LabelStudioClient
from ls_companion.errors import CompanionError
from ls_companion.settings import Settings, load_settings

app = typer.Typer(
    name="ls-companion",
    help="Active learning and annotation quality control for Label Studio Community Edition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Human output goes to stdout; logs, progress bars and errors go to stderr.
console = Console()
err_console = Console(stderr=True)


@dataclass
class CliContext:
    """What every command gets: settings read once from the environment, and a client made on demand."""

    debug: bool = False
    _overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(**self._overrides)

    @cached_property
    def client(self) -> LabelStudioClient:
        return LabelStudioClient.from_settings(self.settings)


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    if obj is None:  # a command invoked without the root callback (tests calling it directly)
        obj = CliContext()
        ctx.obj = obj
    return obj


def emit(payload: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print a command's result: JSON on stdout with ``--json``, else the human rendering."""
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        human(console)


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (only on a terminal); yields a callback that advances it by n."""
    if not enabled or not err_console.is_terminal:
        yield lambda n: None
        return
    with Progress(console=err_console, transient=True) as progress:
        bar = progress.add_task(description, total=total)
        yield lambda n: progress.update(bar, advance=n)


def _version(value: bool) -> None:
    if value:
        console.print(f"ls-companion {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (INFO level)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Active learning and annotation quality control for Label Studio Community Edition.

    Settings come from the environment (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, REDIS_URL, DATA_DIR...;
    see the README). Exit codes: 0 ok, 1 internal error, 2 bad input, 3 Label Studio error,
    4 Redis unavailable, 5 ML backend error, 6 gate not passed, 130 interrupted.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = CliContext(debug=debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ls-companion`` script: run the command, turn errors into one-line messages."""
    command = typer.main.get_command(app)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Outside standalone mode click returns the code of a ``typer.Exit`` instead of raising it.
        code = command.main(
            args=list(argv) if argv is not None else None, prog_name="ls-companion", standalone_mode=False
        )
    except CompanionError as exc:
        one_line = " ".join(str(exc).split())  # a library's multi-line reason stays on our one line
        err_console.print(Text.assemble(("error:", "red"), " ", one_line), highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors from the (vendored) click parser
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        usage_ctx = getattr(exc, "ctx", None)
        hint = f" (see `{usage_ctx.command_path} --help`)" if usage_ctx is not None else ""
        err_console.print(f"[red]error:[/red] {message}{hint}", highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
