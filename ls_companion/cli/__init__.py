"""The ``ls-companion`` command line: one module per command, errors mapped to messages in ``app``."""

from ls_companion.cli import (  # noqa: F401  (registers)
    bootstrap,
    demo,
    gate,
    guidelines,
    label_issues,
    metrics,
    prelabel,
    report,
    select,
    simulate,
    sync,
)
from ls_companion.cli.app import app, main

__all__ = ["app", "main"]
