"""scaleout-edge: an open, full-stack federated-learning system.

The public surface is what ``__all__`` lists; everything else is internal.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["APIClient", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import scaleout` (e.g. by the CLI or a compute package) stays light.
    if name == "APIClient":
        from scaleout.api.client import APIClient

        return APIClient
    raise AttributeError(f"module 'scaleout' has no attribute {name!r}")
