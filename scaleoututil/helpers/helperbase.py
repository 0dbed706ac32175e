"""The interface every helper plugin implements: how model parameters become one file and back."""

from abc import ABC, abstractmethod
from typing import Any


class HelperBase(ABC):
    """A helper serializes model parameters and does the arithmetic aggregators need on them."""

    def __init__(self) -> None:
        self.name = self.__class__.__name__

    @abstractmethod
    def increment_average(self, m1: Any, m2: Any, n: float, N: float) -> Any:
        """Fold update ``m2`` (weight ``n``) into the running mean ``m1`` whose total weight is now ``N``."""

    @abstractmethod
    def save(self, model: Any, path: str | None = None) -> str:
        """Write the parameters to one file and return its path."""

    @abstractmethod
    def load(self, path: Any) -> Any:
        """Read parameters written by :meth:`save`."""
