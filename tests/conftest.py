"""Shared fixtures. Real servers (MongoDB-compatible, S3) live in their own plugin modules."""

pytest_plugins = [
    "tests.fixtures.mongo_server",
    "tests.fixtures.s3_server",
    "tests.chaos.plugin",
    "tests.topology",
]
