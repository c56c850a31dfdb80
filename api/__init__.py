"""The HTTP API: FastAPI routes over the storage queries, for people and dashboards.

`create_app` builds the application from `core.settings.Settings`; the
composition root (`qorgau`) serves it with uvicorn.
"""

from __future__ import annotations

from api.main import create_app

__all__ = ["create_app"]
