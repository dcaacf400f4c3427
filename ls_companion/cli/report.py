"""The `report` command(s). Placeholder: filled in by its issue."""
