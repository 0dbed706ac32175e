"""The REST API (FastAPI), the dashboard and the APIClient."""
