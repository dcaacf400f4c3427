"""The `metrics` command(s). Placeholder: filled in by its issue."""
