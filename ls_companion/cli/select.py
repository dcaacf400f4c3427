"""The `select` command(s). Placeholder: filled in by its issue."""
