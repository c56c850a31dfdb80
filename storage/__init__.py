"""Storage: schema and migrations, COPY ingest, idempotent writes, queries for the API.

TimescaleDB features (hypertable, compression, retention, continuous aggregate)
when the extension is available, plain PostgreSQL with the same tables otherwise.
"""

from __future__ import annotations

from storage.ingest import ingest_readings
from storage.migrate import MigrationResult, migrate
from storage.reference import seed_reference

__all__ = ["MigrationResult", "ingest_readings", "migrate", "seed_reference"]
