"""Helper for models stored as one flat float64 array in a raw binary file (no header)."""

from typing import IO

from scaleoututil.helpers.plugins import numpyhelper


class Helper(numpyhelper.Helper):
    """The numpy helper's arithmetic, with ``raw_binary`` as the default file type."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "binaryhelper"

    def save(
        self, weights: numpyhelper.Weights, path: str | None = None, file_type: str = "raw_binary"
    ) -> str:
        """Write all arrays flattened into one float64 file; shapes are not kept."""
        return super().save(weights, path, file_type)

    def load(self, path: str | IO[bytes], file_type: str = "raw_binary") -> numpyhelper.Weights:
        """Read the file as one float64 array (a list of one)."""
        return super().load(path, file_type)
