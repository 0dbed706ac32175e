"""Command-line interface: the `scaleout` command."""
