"""The servers' log records: text or one JSON object per line, with the session, round and client ids.

The ids come from context variables set where a call's ids are known (the combiner's log-context
interceptor, per RPC; asyncio tasks inherit them from where they were created), so every record of
that call carries them without each log statement naming them. ``extra={"client_id": ...}`` on a
record sets one explicitly.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

IDS = ("session_id", "round_id", "client_id")
_CONTEXT: dict[str, ContextVar[str]] = {name: ContextVar(name, default="") for name in IDS}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


def set_log_ids(**ids: str) -> None:
    """Set ids (session_id, round_id, client_id) for the rest of the current context; skips empty ones."""
    for name, value in ids.items():
        if value:
            _CONTEXT[name].set(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the ids it has, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in IDS:
            value = getattr(record, name, None) or _CONTEXT[name].get()
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """The process's root handler on stderr, at ``level``, in ``log_format`` ("text" or "json")."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
