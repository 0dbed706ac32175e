"""Open a statestore or a model repository from its URI; the only place that knows the backends."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from scaleout.errors import ScaleoutError
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore

# The embedded default of a single machine: SQLite and files under ./.scaleout/.
DEFAULT_STATESTORE_URI = "sqlite:///.scaleout/statestore.db"
DEFAULT_MODEL_REPOSITORY_URI = "file://.scaleout/models"


def work_dir_statestore_uri(work_dir: Path) -> str:
    """The statestore of a work folder as `scaleout local` lays it out (and `--work-dir` opens it)."""
    return f"sqlite:///{work_dir.resolve() / 'statestore.db'}"


def work_dir_models_uri(work_dir: Path) -> str:
    """The model repository of a work folder as `scaleout local` lays it out."""
    return f"file://{work_dir.resolve() / 'models'}"


class InvalidURI(ScaleoutError):
    """A storage URI has an unknown scheme or is missing a part."""


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "S3Credentials | None":
        """SCALEOUT_S3_ACCESS_KEY / SCALEOUT_S3_SECRET_KEY, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""
        for access, secret in (
            ("SCALEOUT_S3_ACCESS_KEY", "SCALEOUT_S3_SECRET_KEY"),
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ):
            if environ.get(access) and environ.get(secret):
                return cls(environ[access], environ[secret])
        return None


def open_statestore(uri: str) -> Statestore:
    """``mongodb://…/database`` (database defaults to "scaleout"), ``sqlite:///path`` or ``sqlite:///:memory:``."""
    parts = urlsplit(uri)
    if parts.scheme in ("mongodb", "mongodb+srv"):
        from scaleout.store.mongo import MongoStatestore

        database = parts.path.lstrip("/") or "scaleout"
        return MongoStatestore(uri, database)
    if parts.scheme == "sqlite":
        from scaleout.store.sqlite import SQLiteStatestore

        path = unquote(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else ""
        if not path:
            raise InvalidURI(
                f"{uri!r}: write sqlite:///relative/path.db, sqlite:////abs/path.db or sqlite:///:memory:"
            )
        return SQLiteStatestore(path)
    raise InvalidURI(f"unknown statestore URI {uri!r}: use mongodb://host:port/database or sqlite:///path")


def open_model_repository(uri: str, credentials: S3Credentials | None = None) -> ModelRepository:
    """``file:///path`` or ``s3://bucket?endpoint=host:port&secure=false&region=…``."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        from scaleout.store.filesystem import FileModelRepository

        path = unquote(parts.netloc + parts.path)
        if not path:
            raise InvalidURI(f"{uri!r}: write file:///absolute/path or file://relative/path")
        return FileModelRepository(Path(path))
    if parts.scheme == "s3":
        from scaleout.store.s3 import S3ModelRepository

        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if not parts.netloc:
            raise InvalidURI(f"{uri!r} names no bucket: write s3://bucket?endpoint=host:port")
        if "endpoint" not in query:
            raise InvalidURI(f"{uri!r} names no endpoint: add ?endpoint=host:port")
        if credentials is None:
            raise InvalidURI(
                "no S3 credentials: set SCALEOUT_S3_ACCESS_KEY and SCALEOUT_S3_SECRET_KEY "
                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        return S3ModelRepository(
            endpoint=query["endpoint"],
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            bucket=parts.netloc,
            secure=query.get("secure", "false").lower() in ("1", "true", "yes"),
            region=query.get("region"),
        )
    raise InvalidURI(
        f"unknown model repository URI {uri!r}: use file:///path or s3://bucket?endpoint=host:port"
    )
