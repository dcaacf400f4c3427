"""The `simulate` command(s). Placeholder: filled in by its issue."""
