"""COPY-based batch ingest of readings, idempotent on (sensor_id, ts).

The common case — a batch never seen before — is one binary COPY straight
into ``readings``, inside a savepoint. If any row is already stored (Kafka
redelivered a batch after a worker restart), the savepoint is rolled back and
the batch goes through a temporary staging table into ``readings`` with
``ON CONFLICT DO NOTHING``. Either way a batch is stored whole or not at all,
and nothing is stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from core.types import Reading

__all__ = ["ingest_new_readings", "ingest_readings"]

_COLUMNS = (
    "sensor_id",
    "ts",
    "enterprise_id",
    "hazard",
    "value",
    "unit",
    "raw_value",
    "raw_unit",
    "seq",
    "plausible",
)
_TYPES = ("text", "timestamptz", "text", "text", "float8", "text", "float8", "text", "int8", "bool")
_COLS = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
_COPY_DIRECT = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(_COLS)
_COPY_STAGE = sql.SQL("COPY readings_stage ({}) FROM STDIN (FORMAT BINARY)").format(_COLS)
_STAGE = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS readings_stage"
    " (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MOVE = sql.SQL(
    "INSERT INTO readings ({cols}, ingested_at)"
    " SELECT {cols}, clock_timestamp() FROM readings_stage"
    " ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING sensor_id, ts"
).format(cols=_COLS)


async def _copy(
    cur: psycopg.AsyncCursor[object], statement: sql.Composed, readings: Sequence[Reading]
) -> None:
    async with cur.copy(statement) as cp:
        cp.set_types(list(_TYPES))
        for r in readings:
            await cp.write_row(
                (
                    r.sensor_id,
                    r.ts,
                    r.enterprise_id,
                    r.hazard,
                    r.value,
                    r.unit,
                    r.raw_value,
                    r.raw_unit,
                    r.seq,
                    r.plausible,
                )
            )


async def ingest_new_readings(
    conn: psycopg.AsyncConnection, readings: Sequence[Reading]
) -> list[Reading]:
    """Store ``readings``; return the ones that were not stored before, in input order.

    Runs in the caller's transaction when there is one, so what is derived from
    the new readings (alerts, exposures, checkpoints) commits with them.
    """
    if not readings:
        return []
    async with conn.transaction(), conn.cursor() as cur:
        try:
            async with conn.transaction():  # a savepoint: the fast path may fail whole
                await _copy(cur, _COPY_DIRECT, readings)
            return list(readings)
        except psycopg.errors.UniqueViolation:
            pass  # some rows were stored before: fall back to the idempotent path
        await cur.execute(_STAGE)
        await _copy(cur, _COPY_STAGE, readings)
        await cur.execute(_MOVE)
        new = {(sid, ts) for sid, ts in await cur.fetchall()}
        out, seen = [], set()
        for r in readings:
            k = (r.sensor_id, r.ts)
            if k in new and k not in seen:
                seen.add(k)
                out.append(r)
        return out


async def ingest_readings(conn: psycopg.AsyncConnection, readings: Sequence[Reading]) -> int:
    """Store ``readings``; return how many were new (the rest were already stored)."""
    return len(await ingest_new_readings(conn, readings))
