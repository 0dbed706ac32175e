"""The YAML configuration file (`scaleout --config FILE`), the third source after flags and environment.

Its sections follow the command tree and its keys are the commands' long option names::

    api:
      start:
        port: 8092
        db: mongodb://mongo:27017/scaleout
    combiner:
      start:
        name: combiner-1

It becomes click's ``default_map``, so the order is: flags > SCALEOUT_* environment > file > defaults.
"""

from pathlib import Path
from typing import Any

import click

from scaleout.client.yamlfile import read_yaml
from scaleout.errors import ScaleoutError


def config_defaults(command: click.Command, section: Any, where: str) -> dict[str, Any]:
    """Translate one section of the file into click's default_map for `command`, checking every key."""
    if not isinstance(section, dict):
        raise click.BadParameter(
            f"{where} must be a mapping of option names to values", param_hint="--config"
        )
    if isinstance(command, click.Group):
        defaults = {}
        for name, value in section.items():
            sub = command.commands.get(name)
            if sub is None:
                known = ", ".join(sorted(command.commands))
                raise click.BadParameter(
                    f"{where} has no command {name!r}; known: {known}", param_hint="--config"
                )
            defaults[name] = config_defaults(sub, value, f"{where}.{name}")
        return defaults
    options = {
        opt.lstrip("-"): param.name
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--")
    }
    unknown = [key for key in section if str(key).replace("_", "-") not in options]
    if unknown:
        known = ", ".join(sorted(options))
        raise click.BadParameter(
            f"{where} has unknown option(s) {unknown}; known: {known}", param_hint="--config"
        )
    return {options[str(key).replace("_", "-")]: value for key, value in section.items()}


def load_config(ctx: click.Context, _param: click.Parameter, path: Path | None) -> Path | None:
    """Callback of the root group's --config: install the file's values as defaults."""
    if path is None:
        return None
    try:
        data = read_yaml(path)
    except (OSError, ScaleoutError) as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    assert isinstance(ctx.command, click.Group)
    ctx.default_map = config_defaults(ctx.command, data or {}, path.name)
    return path
