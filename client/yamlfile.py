"""Read the package's YAML files so a syntax error names the file, line and column to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scaleout.errors import PackageError


def read_yaml(path: Path) -> Any:
    """Parse ``path``; a syntax error becomes a one-line PackageError naming the file and position."""
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise PackageError(f"{path} is not valid YAML{where}: {problem}; fix the syntax") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PackageError(f"{path} is not valid YAML: {exc}; fix the file") from exc
