"""What compute packages import: helpers for model serialization and metadata files."""
