"""What compute packages import: pick a helper plugin, and write the metadata and metrics files.

File naming is part of the SISO contract between the client and the entry points:
train writes ``OUT`` and ``OUT-metadata``; validate writes its metrics JSON at ``OUT`` itself.
"""

import importlib
import json
import pkgutil
from typing import Any

from scaleoututil.helpers import plugins
from scaleoututil.helpers.helperbase import HelperBase

HELPER_PLUGIN_PATH = "scaleoututil.helpers.plugins.{}"


def known_helpers() -> list[str]:
    """Names of the helper plugins shipped in ``scaleoututil.helpers.plugins``."""
    return sorted(m.name for m in pkgutil.iter_modules(plugins.__path__) if not m.name.startswith("_"))


def get_helper(helper_module_name: str) -> HelperBase:
    """Return an instance of ``scaleoututil.helpers.plugins.<helper_module_name>.Helper``."""
    known = known_helpers()
    if helper_module_name not in known:
        raise ValueError(f"unknown helper '{helper_module_name}'; known helpers: {', '.join(known)}")
    module = importlib.import_module(HELPER_PLUGIN_PATH.format(helper_module_name))
    return module.Helper()


def save_metadata(metadata: dict[str, Any], filename: str) -> None:
    """Write ``metadata`` as JSON next to the model at ``filename`` (to ``filename + "-metadata"``)."""
    with open(str(filename) + "-metadata", "w", encoding="utf-8") as outfile:
        json.dump(metadata, outfile)


def load_metadata(filename: str) -> dict[str, Any]:
    """Read the metadata written by :func:`save_metadata` for the model at ``filename``."""
    with open(str(filename) + "-metadata", encoding="utf-8") as infile:
        return json.load(infile)


def save_metrics(metrics: dict[str, Any], filename: str) -> None:
    """Write validation ``metrics`` as JSON to ``filename`` itself."""
    with open(filename, "w", encoding="utf-8") as outfile:
        json.dump(metrics, outfile)
