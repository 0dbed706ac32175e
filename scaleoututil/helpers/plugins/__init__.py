"""Helper plugins, importable as scaleoututil.helpers.plugins.<name>."""
