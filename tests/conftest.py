"""Shared fixtures. Real servers (MongoDB-compatible, S3) live in their own plugin modules."""

pytest_plugins = ["tests.fixtures.servers"]
