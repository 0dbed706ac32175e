"""The controller: runs sessions of rounds, reduces combiner results, commits models to the trail."""

from scaleout.controller.controller import INTERRUPTED, Controller, SessionConflict
from scaleout.controller.settings import ControllerSettings

__all__ = ["INTERRUPTED", "Controller", "ControllerSettings", "SessionConflict"]
