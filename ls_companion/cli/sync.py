"""The `sync` command(s). Placeholder: filled in by its issue."""
