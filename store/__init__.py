"""Statestore (MongoDB, SQLite) and model repository (S3/MinIO, filesystem), one interface each.

Components open them by URI and never know which backend is behind:
``open_statestore("mongodb://host/db" | "sqlite:///path" | "sqlite:///:memory:")`` and
``open_model_repository("s3://bucket?endpoint=host:port&secure=false" | "file:///path")``.
"""

from scaleout.store.repository import ModelRepository, validate_id
from scaleout.store.statestore import Page, Statestore
from scaleout.store.uri import open_model_repository, open_statestore

__all__ = ["ModelRepository", "Page", "Statestore", "open_model_repository", "open_statestore", "validate_id"]
