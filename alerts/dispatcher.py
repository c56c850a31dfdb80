"""Turns alert changes into deliveries: routing, evacuation notices, escalation, digests.

`Dispatcher.handle` takes one change as the worker publishes it on the
``qorgau.alerts`` topic (`core.alarms.AlertEvent.wire_record`), finds the routes
it falls under and the people behind each (`storage.routing.audience_members`),
and records one delivery per person and address (`alerts.delivery.Deliverer`,
idempotent on the change, recipient, channel and address). It returns once every
delivery is *recorded*, so its caller may acknowledge the change; the sending
goes on in the background and a crash is finished by `Deliverer.resume_pending`.

`Dispatcher.tick` does what time brings, given the time (tests inject it):
critical alerts nobody acknowledged climb the escalation chain and are sent
again (`alerts.escalation`), alerts open long enough reach their late routes
(e.g. a sensor broken for 4 hours goes to the labour inspector too), waiting
and waiting warnings go out as one digest per person.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

import structlog
from psycopg_pool import AsyncConnectionPool

from alerts.channels.mqtt import app_notify_topic
from alerts.delivery import Deliverer, DeliveryOutcome
from alerts.escalation import AlertClock, next_step
from alerts.notification import Notification, Recipient, Target
from alerts.routing import Audience, Routing
from core.access import Role, Scope
from core.alarms import AlertEvent
from core.catalogue import Catalogue
from storage import alerting, routing
from storage.alerting import AlertRow
from storage.routing import EnterpriseInfo, MemberRow

__all__ = ["Dispatcher", "TickReport"]

log = structlog.get_logger("qorgau.alerts.dispatcher")

_NOTIFIED_ACTIONS = frozenset({"open", "escalate", "clear"})
_ENTERPRISE_TTL_S = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickReport:
    escalated: int = 0
    reminded: int = 0
    late_routed: int = 0
    digests: int = 0
    deliveries: list[Awaitable[DeliveryOutcome]] = field(default_factory=list)

    async def outcomes(self) -> list[DeliveryOutcome]:
        return list(await asyncio.gather(*self.deliveries))


@dataclass(frozen=True, slots=True)
class _Job:
    notification: Notification
    recipient: Recipient
    target: Target


class Dispatcher:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        deliverer: Deliverer,
        rules: Routing,
        catalogue: Catalogue,
        *,
        public_url: str = "",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._deliverer = deliverer
        self.rules = rules
        self._catalogue = catalogue
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._enterprises: dict[str, tuple[float, EnterpriseInfo | None]] = {}

    # --- one change --------------------------------------------------------------------

    async def handle(self, change: AlertEvent) -> list[Awaitable[DeliveryOutcome]]:
        """Record the deliveries ``change`` calls for; awaitables of their outcomes."""
        started = time.monotonic()
        action = change.action.value
        if action not in _NOTIFIED_ACTIONS:
            return []
        kind, severity, enterprise_id = (
            change.kind.value,
            change.severity.value,
            change.enterprise_id,
        )
        hazard = change.hazard
        info = await self._enterprise(enterprise_id)
        routes = self.rules.matches(
            kind=kind, severity=severity, category=self._category(hazard), action=action
        )
        stamp = change.ts.isoformat().replace("+00:00", "Z")
        note = Notification(
            change_id=f"{change.key}|{action}|{stamp}",
            purpose="alert",
            enterprise_id=enterprise_id,
            enterprise_name=info.name if info else enterprise_id,
            alert_key=change.key,
            action=action,
            alert_kind=kind,
            severity=severity,
            hazard=hazard or None,
            hazard_name=self._name(hazard),
            sensor_id=change.sensor_id,
            zone_id=change.zone_id,
            value=change.value,
            unit=self._unit(hazard),
            limit=change.limit,
            ts=change.ts,
            message=change.message,
            # The alert's number is not known yet (the worker commits after publishing):
            # the link lists the sensor's alerts, this one first.
            link=(
                f"{self._public_url}/api/v1/alerts?{urlencode({'sensor_id': change.sensor_id})}"
                if self._public_url and change.sensor_id
                else None
            ),
            created_monotonic=started,
        )
        jobs: list[_Job] = []
        digest: list[_Job] = []
        async with self._pool.connection() as conn:
            for route in routes:
                members = await self._members(conn, route.audience, info, enterprise_id)
                routed = note if route.purpose == "alert" else replace(note, purpose=route.purpose)
                batch = self._jobs(routed, members, route.audience, enterprise_id)
                if route.digest and severity == "warning" and action == "open":
                    digest += batch
                else:
                    jobs += batch
            for job in _unique(digest, skip=jobs):
                await self._add_to_digest(conn, job)
        if not jobs and not digest:
            # Nobody with an address covers this enterprise for this kind: people to add.
            log.warning(
                "alert change reaches nobody",
                key=note.alert_key,
                kind=kind,
                severity=severity,
                action=action,
                routes=[r.name for r in routes],
            )
        return await self._enqueue(_unique(jobs))

    # --- time --------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Escalations, reminders, late routes and digests due at ``now``.

        Returns once their deliveries are recorded; `TickReport.outcomes` awaits them.
        (Deliveries a dead process left behind are the runtime's to resume, apart from
        the tick, so a slow far end never holds escalations up.)
        """
        now = now or self._clock()
        report = TickReport()
        known: dict[tuple[Audience, str], list[MemberRow]] = {}  # people, for this tick
        await self._escalate(now, report, known)
        await self._late_routes(now, report, known)
        await self._digests(now, report)
        return report

    async def _escalate(
        self,
        now: datetime,
        report: TickReport,
        known: dict[tuple[Audience, str], list[MemberRow]],
    ) -> None:
        policy = self.rules.escalation
        async with self._pool.connection() as conn:
            # Critical alerts still going on that nobody has acknowledged or resolved. One
            # whose condition has cleared stays in people's list until someone resolves it,
            # but no longer climbs the chain at night.
            rows = await alerting.list_alerts(
                conn,
                scope=Scope(national=True),
                where=alerting.AlertFilter(status=("open",), severity="critical", active=True),
                limit=None,
            )
        for row in rows:
            step = next_step(AlertClock.of(row), now, policy)
            if step is None:
                continue
            async with self._pool.connection() as conn:
                if not await routing.claim_escalation_step(
                    conn,
                    alert_id=row.id,
                    from_level=row.escalation_level,
                    from_reminders=row.reminders,
                    level=step.level,
                    reminders=step.reminders,
                    at=now,
                ):
                    continue  # acknowledged meanwhile, or another dispatcher took the step
                names = [lvl.name for lvl in policy.levels[: step.level]]
                await alerting.append_history(
                    conn,
                    alert_id=row.id,
                    at=now,
                    action="escalate_level" if step.kind == "escalate" else "remind",
                    status=row.status,
                    severity=row.severity,
                    comment=(f"sent to {names[-1]}" if step.kind == "escalate" and names else None),
                )
                await alerting.notify_change(
                    conn,
                    alert_id=row.id,
                    action="escalate_level" if step.kind == "escalate" else "remind",
                    actor="machine",
                )
            # Everyone told so far: the first routes, then each level reached.
            audiences = [
                r.audience
                for r in self.rules.matches(
                    kind=row.kind,
                    severity=row.severity,
                    category=self._category(row.hazard),
                    action="open",
                )
                if r.purpose == "alert"
            ] + [lvl.audience for lvl in policy.levels[: step.level]]
            purpose = "escalation" if step.kind == "escalate" else "reminder"
            note = await self._notification_of(
                row,
                now,
                purpose=purpose,
                change_id=f"alert:{row.id}|{step.kind}|{step.level}|{step.reminders}",
            )
            report.deliveries += await self._tell(note, row, audiences, known)
            if step.kind == "escalate":
                report.escalated += 1
                log.warning(
                    "critical alert unacknowledged: escalated",
                    alert_id=row.id,
                    level=step.level,
                    to=names[-1] if names else None,
                )
            else:
                report.reminded += 1

    async def _late_routes(
        self,
        now: datetime,
        report: TickReport,
        known: dict[tuple[Audience, str], list[MemberRow]],
    ) -> None:
        for route in self.rules.late_routes():
            assert route.after_open is not None
            async with self._pool.connection() as conn:
                ids = await routing.late_route_candidates(
                    conn,
                    route=route.name,
                    kinds=sorted(route.kinds),
                    opened_before=now - route.after_open,
                )
            for alert_id in ids:
                async with self._pool.connection() as conn:
                    row = await alerting.get_alert(
                        conn, scope=Scope(national=True), alert_id=alert_id
                    )
                    if row is None or not route.matches(
                        kind=row.kind,
                        severity=row.severity,
                        category=self._category(row.hazard),
                        action="open",
                    ):
                        continue
                    if not await routing.mark_late_routed(conn, alert_id=row.id, route=route.name):
                        continue
                note = await self._notification_of(
                    row, now, change_id=f"alert:{row.id}|late|{route.name}", purpose=route.purpose
                )
                report.deliveries += await self._tell(note, row, [route.audience], known)
                report.late_routed += 1

    async def _digests(self, now: datetime, report: TickReport) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            items = await routing.due_digest_items(
                conn, oldest_before=now - self.rules.digest_every
            )
            groups = groupby(items, key=lambda i: (i.recipient, i.channel, i.address))
            for (_recipient, _channel, _address), group in groups:
                batch = list(group)
                first = batch[0]
                notes = tuple(Notification.from_payload(i.notification) for i in batch)
                digest = Notification(
                    change_id=f"digest:{first.recipient}:{first.channel}:{first.id}-{batch[-1].id}",
                    purpose="digest",
                    enterprise_id=notes[0].enterprise_id,
                    enterprise_name=notes[0].enterprise_name,
                    alert_key=None,
                    action=None,
                    alert_kind=None,
                    severity="warning",
                    hazard=None,
                    sensor_id=None,
                    zone_id=None,
                    value=None,
                    unit=None,
                    limit=None,
                    ts=now,
                    message=f"{len(notes)} warnings",
                    items=notes,
                )
                recipient = Recipient.of(first.recipient, first.recipient_name, first.language)
                target = Target(
                    channel=first.channel,
                    address=first.address,
                    secret=first.secret,
                    p256dh=first.p256dh,
                    auth=first.auth,
                    subscription_id=first.subscription_id,
                )
                # Recorded before the items are marked sent; both commit together.
                report.deliveries.append(await self._deliverer.enqueue(digest, recipient, target))
                await routing.mark_digest_flushed(conn, ids=[i.id for i in batch], at=now)
                report.digests += 1

    # --- helpers ---------------------------------------------------------------------

    async def _tell(
        self,
        note: Notification,
        row: AlertRow,
        audiences: Iterable[Audience],
        known: dict[tuple[Audience, str], list[MemberRow]],
    ) -> list[Awaitable[DeliveryOutcome]]:
        """Record ``note`` for the people of ``audiences``; ``known`` keeps, for one tick,
        the people of each (audience, enterprise) already looked up."""
        info = await self._enterprise(row.enterprise_id)
        jobs: list[_Job] = []
        async with self._pool.connection() as conn:
            for audience in audiences:
                members = known.get((audience, row.enterprise_id))
                if members is None:
                    members = await self._members(conn, audience, info, row.enterprise_id)
                    known[(audience, row.enterprise_id)] = members
                jobs += self._jobs(note, members, audience, row.enterprise_id)
        return await self._enqueue(_unique(jobs))

    async def _enqueue(self, jobs: list[_Job]) -> list[Awaitable[DeliveryOutcome]]:
        return [await self._deliverer.enqueue(j.notification, j.recipient, j.target) for j in jobs]

    async def _members(
        self, conn: Any, audience: Audience, info: EnterpriseInfo | None, enterprise_id: str
    ) -> list[MemberRow]:
        if info is None and audience.role.regional:
            return []  # an enterprise missing from the reference data has no region
        return await routing.audience_members(
            conn,
            role=audience.role.value,
            region_id=info.region_id if info else "",
            enterprise_id=enterprise_id,
            tags=sorted(audience.tags),
            national_only=audience.national,
        )

    def _jobs(
        self,
        note: Notification,
        members: list[MemberRow],
        audience: Audience,
        enterprise_id: str,
    ) -> list[_Job]:
        jobs = []
        for m in members:
            recipient = Recipient.of(f"user:{m.id}", m.full_name or m.username, m.language)
            for target in _targets(m, audience.channels, enterprise_id):
                if target.channel == "mqtt":
                    app = Recipient.of(f"app:{enterprise_id}/{m.username}", m.username, m.language)
                    jobs.append(_Job(note, app, target))
                else:
                    jobs.append(_Job(note, recipient, target))
        return jobs

    async def _add_to_digest(self, conn: Any, job: _Job) -> None:
        t = job.target
        await routing.add_digest_item(
            conn,
            change_id=job.notification.change_id,
            recipient=job.recipient.key,
            recipient_name=job.recipient.name,
            language=job.recipient.language,
            channel=t.channel,
            address=t.address,
            secret=t.secret,
            p256dh=t.p256dh,
            auth=t.auth,
            subscription_id=t.subscription_id,
            notification=job.notification.payload(),
            created_at=self._clock(),
        )

    async def _notification_of(
        self, row: AlertRow, now: datetime, *, change_id: str, purpose: str
    ) -> Notification:
        """What to tell people about a stored alert (escalation, reminder, late route)."""
        info = await self._enterprise(row.enterprise_id)
        return Notification(
            change_id=change_id,
            purpose=purpose,
            enterprise_id=row.enterprise_id,
            enterprise_name=info.name if info else row.enterprise_id,
            alert_key=row.alert_key,
            action="open",
            alert_kind=row.kind,
            severity=row.severity,
            hazard=row.hazard,
            hazard_name=self._name(row.hazard),
            sensor_id=row.sensor_id,
            zone_id=row.zone_id,
            value=row.value,
            unit=self._unit(row.hazard),
            limit=row.limit_value,
            ts=now,
            message=row.message,
            link=f"{self._public_url}/api/v1/alerts/{row.id}" if self._public_url else None,
            created_monotonic=time.monotonic(),
        )

    async def _enterprise(self, enterprise_id: str) -> EnterpriseInfo | None:
        cached = self._enterprises.get(enterprise_id)
        if cached is not None and time.monotonic() - cached[0] < _ENTERPRISE_TTL_S:
            return cached[1]
        async with self._pool.connection() as conn:
            info = await routing.enterprise_info(conn, enterprise_id=enterprise_id)
        self._enterprises[enterprise_id] = (time.monotonic(), info)
        if info is None:
            log.warning(
                "alert of an enterprise missing from the reference data",
                enterprise_id=enterprise_id,
            )
        return info

    def _category(self, hazard: object) -> str | None:
        h = self._catalogue.get(str(hazard)) if hazard else None
        return h.category if h is not None else None

    def _unit(self, hazard: object) -> str | None:
        h = self._catalogue.get(str(hazard)) if hazard else None
        return h.unit if h is not None else None

    def _name(self, hazard: object) -> str | None:
        h = self._catalogue.get(str(hazard)) if hazard else None
        return h.name_ru if h is not None else None


def _targets(m: MemberRow, channels: frozenset[str], enterprise_id: str) -> list[Target]:
    """Every address of ``m`` on the allowed channels."""
    out: list[Target] = []
    if "webpush" in channels:
        out += [
            Target(
                "webpush",
                str(s["endpoint"]),
                p256dh=str(s["p256dh"]),
                auth=str(s["auth"]),
                subscription_id=int(s["id"]),
            )
            for s in m.subscriptions
        ]
    if "email" in channels and m.email:
        out.append(Target("email", m.email))
    for c in m.channels:
        if c["channel"] in channels:
            out.append(Target(str(c["channel"]), str(c["address"]), secret=c.get("secret")))
    if "mqtt" in channels and m.role == Role.WORKER:
        out.append(Target("mqtt", app_notify_topic(enterprise_id, m.username)))
    return out


def _unique(jobs: list[_Job], skip: Iterable[_Job] = ()) -> list[_Job]:
    """One job per (recipient, channel, address): a person matched by two routes is told once."""
    seen = {(j.recipient.key, j.target.channel, j.target.address) for j in skip}
    out = []
    for j in jobs:
        k = (j.recipient.key, j.target.channel, j.target.address)
        if k not in seen:
            seen.add(k)
            out.append(j)
    return out
