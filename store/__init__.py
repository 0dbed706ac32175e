"""Statestore (MongoDB, SQLite) and model repository (S3/MinIO, filesystem), one interface each."""
