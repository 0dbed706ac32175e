"""scaleout-edge: an open, full-stack federated-learning system.

The public surface is what ``__all__`` lists; everything else is internal.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
