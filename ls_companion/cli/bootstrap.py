"""The `bootstrap` command. Placeholder."""
