"""What safety detection writes: per-minute exposures, checkpoints, reports, model scores.

Alert changes go through `alerts.lifecycle.apply_machine_events`.

All functions take a connection and run in the caller's transaction, so a
worker commits a batch's readings, alerts, exposures and checkpoints together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from core.types import Reading

__all__ = [
    "Checkpoint",
    "ExposureRecord",
    "ModelCheckpoint",
    "ReportRecord",
    "ReportStored",
    "ScoreRecord",
    "load_checkpoint",
    "load_model_state",
    "readings_since_checkpoint",
    "save_checkpoint",
    "save_model_state",
    "store_exposures",
    "store_report",
    "store_scores",
]


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    sensor_id: str
    ts: datetime
    enterprise_id: str
    hazard: str
    twa: float | None
    stel: float | None
    ceiling: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    enterprise_id: str
    state: bytes
    watermark: datetime | None
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class ModelCheckpoint:
    enterprise_id: str
    state: bytes
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    sensor_id: str
    ts: datetime
    enterprise_id: str
    detector: str
    score: float
    value: float | None
    expected_low: float | None
    expected_high: float | None
    feature: str | None


@dataclass(frozen=True, slots=True)
class ReportRecord:
    report_id: str
    enterprise_id: str
    worker_id: str
    kind: str
    ts: datetime
    zone_id: str | None
    text: str
    lat: float | None
    lon: float | None
    photo_ref: str | None
    accuracy_m: float | None = None  # of lat/lon, in metres


async def store_exposures(conn: psycopg.AsyncConnection, rows: Sequence[ExposureRecord]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO exposures (sensor_id, ts, enterprise_id, hazard, twa, stel, ceiling)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sensor_id, ts) DO UPDATE"
            " SET twa = EXCLUDED.twa, stel = EXCLUDED.stel, ceiling = EXCLUDED.ceiling",
            [
                (r.sensor_id, r.ts, r.enterprise_id, r.hazard, r.twa, r.stel, r.ceiling)
                for r in rows
            ],
        )


async def save_checkpoint(
    conn: psycopg.AsyncConnection, enterprise_id: str, state: bytes, watermark: datetime | None
) -> None:
    await conn.execute(
        "INSERT INTO detector_state (enterprise_id, state, watermark, saved_at)"
        " VALUES (%s, %s, %s, clock_timestamp()) ON CONFLICT (enterprise_id) DO UPDATE"
        " SET state = EXCLUDED.state, watermark = EXCLUDED.watermark,"
        " saved_at = EXCLUDED.saved_at",
        (enterprise_id, state, watermark),
    )


async def load_checkpoint(conn: psycopg.AsyncConnection, enterprise_id: str) -> Checkpoint | None:
    cur = await conn.execute(
        "SELECT enterprise_id, state, watermark, saved_at FROM detector_state"
        " WHERE enterprise_id = %s",
        (enterprise_id,),
    )
    row = await cur.fetchone()
    return Checkpoint(row[0], bytes(row[1]), row[2], row[3]) if row else None


async def readings_since_checkpoint(
    conn: psycopg.AsyncConnection,
    enterprise_id: str,
    *,
    saved_at: datetime | None,
    not_before: datetime | None,
) -> list[Reading]:
    """The enterprise's readings stored after a checkpoint, in time order (for catch-up)."""
    cur = await conn.execute(
        "SELECT enterprise_id, sensor_id, ts, hazard, value, unit, seq, raw_value, raw_unit,"
        " plausible FROM readings WHERE enterprise_id = %s"
        " AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR"
        " ingested_at > %s) ORDER BY ts, sensor_id",
        (enterprise_id, not_before, not_before, saved_at, saved_at),
    )
    rows: list[Any] = await cur.fetchall()
    return [
        Reading(eid, sid, ts, hz, v, unit, seq, rv, ru, ok)
        for eid, sid, ts, hz, v, unit, seq, rv, ru, ok in rows
    ]


ReportStored = Literal["new", "again", "taken"]


async def store_report(conn: psycopg.AsyncConnection, report: ReportRecord) -> ReportStored:
    """Store a worker's report, once per ``report_id``.

    ``"new"`` when stored now; ``"again"`` when the same worker's report with this id was
    stored before (a redelivery, or an app sending again after a lost answer: nothing
    changes); ``"taken"`` when the id belongs to another worker's report (nothing is
    stored: the caller decides).
    """
    cur = await conn.execute(
        "INSERT INTO reports (report_id, enterprise_id, worker_id, kind, ts, zone_id, text,"
        " lat, lon, accuracy_m, photo_ref) VALUES (%(id)s, %(eid)s, %(wid)s, %(kind)s, %(ts)s,"
        " %(zone)s, %(text)s, %(lat)s, %(lon)s, %(accuracy)s, %(photo)s)"
        " ON CONFLICT (report_id) DO NOTHING",
        {
            "id": report.report_id,
            "eid": report.enterprise_id,
            "wid": report.worker_id,
            "kind": report.kind,
            "ts": report.ts,
            "zone": report.zone_id,
            "text": report.text,
            "lat": report.lat,
            "lon": report.lon,
            "accuracy": report.accuracy_m,
            "photo": report.photo_ref,
        },
    )
    if cur.rowcount == 1:
        return "new"
    cur = await conn.execute(
        "SELECT enterprise_id = %s AND worker_id = %s FROM reports WHERE report_id = %s",
        (report.enterprise_id, report.worker_id, report.report_id),
    )
    row = await cur.fetchone()
    return "again" if row is not None and row[0] else "taken"


async def store_scores(conn: psycopg.AsyncConnection, rows: Sequence[ScoreRecord]) -> None:
    """Anomaly scores (idempotent: a redelivered reading keeps the higher score)."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO anomalies (sensor_id, ts, enterprise_id, detector, score, value,"
            " expected_low, expected_high, feature) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (sensor_id, ts, detector) DO UPDATE"
            " SET score = GREATEST(anomalies.score, EXCLUDED.score)",
            [
                (
                    r.sensor_id,
                    r.ts,
                    r.enterprise_id,
                    r.detector,
                    r.score,
                    r.value,
                    r.expected_low,
                    r.expected_high,
                    r.feature,
                )
                for r in rows
            ],
        )


async def save_model_state(conn: psycopg.AsyncConnection, enterprise_id: str, state: bytes) -> None:
    await conn.execute(
        "INSERT INTO model_state (enterprise_id, state, saved_at)"
        " VALUES (%s, %s, clock_timestamp()) ON CONFLICT (enterprise_id) DO UPDATE"
        " SET state = EXCLUDED.state, saved_at = EXCLUDED.saved_at",
        (enterprise_id, state),
    )


async def load_model_state(
    conn: psycopg.AsyncConnection, enterprise_id: str
) -> ModelCheckpoint | None:
    cur = await conn.execute(
        "SELECT enterprise_id, state, saved_at FROM model_state WHERE enterprise_id = %s",
        (enterprise_id,),
    )
    row = await cur.fetchone()
    return ModelCheckpoint(row[0], bytes(row[1]), row[2]) if row else None
