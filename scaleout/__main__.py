"""`python -m scaleout` is the `scaleout` command."""

from scaleout.cli.main import cli

cli()
