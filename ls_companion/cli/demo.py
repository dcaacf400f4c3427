"""The `demo` command(s). Placeholder: filled in by its issue."""
