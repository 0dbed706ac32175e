"""What an upload must be before anything is stored: a known helper, or a seed model it can use.

The package and model checks themselves live with their artifacts (scaleout.compute_package,
scaleout.model_file), where the clients and combiners use the same ones.
"""

from typing import BinaryIO

from scaleout.errors import PackageError, ScaleoutError
from scaleout.model_file import ModelError, check_model
from scaleout.round_rules import short
from scaleoututil.helpers.helpers import known_helpers


class InvalidModel(ScaleoutError):
    """A seed model the active helper cannot use; the message says why."""


def check_helper(helper: str) -> str:
    """The helper name if scaleoututil ships it; PackageError naming the known ones otherwise."""
    known = known_helpers()
    if helper not in known:
        raise PackageError(f"unknown helper {short(helper)}; use one of: {', '.join(known)}")
    return helper


def check_seed_model(stream: BinaryIO, helper: str, max_bytes: int) -> None:
    """Raise InvalidModel unless the active helper can use this model as a seed.

    numpyhelper models get the model checker every combiner applies (scaleout.model_file): sizes
    from the headers first (at most ``max_bytes`` uncompressed), then values a block at a time.
    """
    stream.seek(0)
    try:
        if helper == "numpyhelper":
            check_model(stream, max_bytes)
    except ModelError as error:
        raise InvalidModel(f"the seed model cannot be used: {error}") from None
    finally:
        stream.seek(0)
