"""Delivering one notification to one target: idempotent, retried, logged, resumable.

`Deliverer.deliver` is idempotent on (``change_id``, recipient key, channel,
address): the first call inserts a ``deliveries`` row already claimed by
itself (``INSERT ... ON CONFLICT DO NOTHING``) and drives it; any later or
concurrent call finds the row and returns its outcome without sending —
unless the row is unfinished and its claim has lapsed (its driver died), in
which case the caller takes the claim over and finishes the job.

Driving a delivery: one attempt through the target's `Channel`, logged to
``delivery_attempts`` and to structlog (change id, alert key, recipient,
channel, attempt, status, latency); then

- `SendStatus.SENT` → ``sent``;
- `SendStatus.RETRY` → ``retrying``, due again after the backoff (or the far
  end's ``Retry-After``, if longer), until ``max_attempts``, then ``failed``;
- `SendStatus.REJECTED` → ``rejected`` at once;
- `SendStatus.GONE` → ``gone``, and the Web Push subscription row is deleted.

A claim is a lease: it covers the attempt in flight and, while waiting to
retry, the wait plus a margin, so another process takes a delivery over only
once its driver is really gone. `Deliverer.resume_pending` does that after a
restart: it claims due ``pending``/``retrying`` rows (``FOR UPDATE SKIP
LOCKED``) and drives them from the notification and target stored in the row.

The deliverer raises only when the database does; a channel's failure (or bug)
is an attempt that did not succeed.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from alerts.channels.base import Channel, SendResult, SendStatus, short_error
from alerts.notification import Notification, Recipient, Target
from core.backoff import Backoff
from core.redaction import redact_address, scrub
from storage.deliveries import (
    FINAL_STATUSES,
    AttemptRecord,
    DeliveryRow,
    claim_delivery,
    claim_due_deliveries,
    create_delivery,
    delete_push_subscription,
    finish_attempt,
    get_delivery,
    get_delivery_by_id,
)

__all__ = ["Deliverer", "DeliveryOutcome", "DeliveryStatus"]

log = structlog.get_logger(__name__)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # created, no attempt finished yet
    RETRYING = "retrying"  # an attempt failed for now; due again at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # every attempt failed for now: given up
    REJECTED = "rejected"  # the far end (or the address) refused it for good
    GONE = "gone"  # the push subscription is dead (and was deleted)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Where one delivery stands.

    ``latency_ms`` is the round trip of the accepted attempt; ``end_to_end_ms``
    the time from `Notification.created_monotonic` to acceptance (same process
    only). ``duplicate`` is True when this call sent nothing because the
    delivery was already finished or is being driven by someone else.
    """

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    latency_ms: float | None = None
    http_status: int | None = None
    detail: str = ""
    duplicate: bool = False
    end_to_end_ms: float | None = None

    @property
    def final(self) -> bool:
        return self.status.value in FINAL_STATUSES


async def _returns(outcome: DeliveryOutcome) -> DeliveryOutcome:
    return outcome


def _done(outcome: DeliveryOutcome) -> Awaitable[DeliveryOutcome]:
    """An outcome known already, as an awaitable like a delivery being driven."""
    return _returns(outcome)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _outcome(
    row: DeliveryRow, *, duplicate: bool, end_to_end_ms: float | None = None
) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=row.id,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        latency_ms=row.latency_ms,
        http_status=row.http_status,
        detail=row.last_error or "",
        duplicate=duplicate,
        end_to_end_ms=end_to_end_ms,
    )


_RESULT_TO_STATUS = {
    SendStatus.SENT: DeliveryStatus.SENT,
    SendStatus.REJECTED: DeliveryStatus.REJECTED,
    SendStatus.GONE: DeliveryStatus.GONE,
}


class Deliverer:
    """Sends notifications through channels with retries, a delivery log and idempotency.

    Parameters
    ----------
    pool
        The database pool (the delivery log lives there).
    channels
        Channel name (``Target.channel``) → channel.
    max_attempts
        Attempts before a delivery that keeps failing for now is ``failed``.
    backoff
        Seconds to wait after failed attempt ``n``; `Backoff` by default.
    sleep
        How to wait (tests pass one that records and returns at once).
    clock
        The current time, aware UTC; decides what is due and when leases lapse.
    attempt_timeout_s
        Longest one attempt may take (on top of the channel's own timeouts).
    lease_s
        How long a claim outlives the attempt or wait it covers.
    max_retry_after_s
        The most a far end's ``Retry-After`` may delay a retry.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        channels: Mapping[str, Channel],
        *,
        max_attempts: int = 5,
        backoff: Callable[[int], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = _utcnow,
        attempt_timeout_s: float = 60.0,
        lease_s: float | None = None,
        max_retry_after_s: float = 300.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._pool = pool
        self._channels = dict(channels)
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self._attempt_timeout_s = attempt_timeout_s
        # Longer than any attempt, so a live driver never loses its claim mid-send.
        self._lease = timedelta(seconds=lease_s if lease_s is not None else attempt_timeout_s + 30)
        self._max_retry_after_s = max_retry_after_s
        self._id = uuid.uuid4().hex[:12]
        self._driving: set[asyncio.Task[DeliveryOutcome]] = set()

    def _token(self) -> str:
        # One token per drive: two concurrent deliver() calls of one deliverer are rivals too.
        return f"{self._id}:{uuid.uuid4().hex[:12]}"

    async def deliver(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> DeliveryOutcome:
        """Deliver once (idempotently) and return where the delivery stands."""
        return await (await self.enqueue(notification, recipient, target))

    async def enqueue(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> Awaitable[DeliveryOutcome]:
        """Record the delivery in the log (durably, before returning) and start driving it.

        Returns an awaitable of the outcome; a dispatcher can acknowledge its input as
        soon as this returns, since a recorded delivery that its driver does not finish
        is finished by `resume_pending`.
        """
        token = self._token()
        now = self._clock()
        async with self._pool.connection() as conn:
            row = await create_delivery(
                conn,
                change_id=notification.change_id,
                alert_key=notification.alert_key,
                recipient=recipient.key,
                recipient_name=recipient.name,
                language=recipient.language,
                channel=target.channel,
                address=target.address,
                target_secret=target.secret,
                p256dh=target.p256dh,
                auth=target.auth,
                subscription_id=target.subscription_id,
                notification=notification.payload(),
                now=now,
                claimed_by=token,
                claimed_until=now + self._lease,
            )
            fresh = row is not None
            if row is None:
                existing = await get_delivery(
                    conn,
                    change_id=notification.change_id,
                    recipient=recipient.key,
                    channel=target.channel,
                    address=target.address,
                )
                if existing is None:  # only if someone deleted it this instant
                    raise RuntimeError(f"delivery of {notification.change_id!r} vanished")
                if existing.status in FINAL_STATUSES:
                    return _done(_outcome(existing, duplicate=True))
                row = await claim_delivery(
                    conn,
                    delivery_id=existing.id,
                    claimed_by=token,
                    now=now,
                    claimed_until=now + self._lease,
                )
                if row is None:  # someone else is driving it right now
                    return _done(_outcome(existing, duplicate=True))
                log.info(
                    "delivery taken over",
                    delivery_id=row.id,
                    change_id=row.change_id,
                    status=row.status,
                    attempts=row.attempts,
                )
        task = asyncio.create_task(
            self._drive(row, notification, recipient, target, token, fresh=fresh),
            name=f"deliver-{row.id}",
        )
        self._driving.add(task)
        task.add_done_callback(self._driving.discard)
        return task

    async def resume_pending(
        self, *, limit: int = 100, concurrency: int = 8
    ) -> list[DeliveryOutcome]:
        """Finish due ``pending``/``retrying`` deliveries whose driver is gone (e.g. after a restart).

        Call it at start and then periodically; it claims at most ``limit`` rows
        and drives up to ``concurrency`` of them at a time.
        """
        token = self._token()
        now = self._clock()
        async with self._pool.connection() as conn:
            rows = await claim_due_deliveries(
                conn, now=now, claimed_by=token, claimed_until=now + self._lease, limit=limit
            )
        if not rows:
            return []
        log.info("resuming deliveries", count=len(rows))
        gate = asyncio.Semaphore(concurrency)

        async def one(row: DeliveryRow) -> DeliveryOutcome:
            async with gate:
                return await self._resume(row, token)

        return list(await asyncio.gather(*(one(r) for r in rows)))

    async def close(self, grace_s: float = 5.0) -> None:
        """Give deliveries in flight ``grace_s`` to finish, stop the rest (their rows stay
        claimed until the lease lapses, then `resume_pending` finishes them), and close the
        channels this deliverer was given."""
        if self._driving:
            _, unfinished = await asyncio.wait(set(self._driving), timeout=grace_s)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()

    async def _resume(self, row: DeliveryRow, token: str) -> DeliveryOutcome:
        try:
            notification = Notification.from_payload(row.notification)
            recipient = Recipient.of(row.recipient, row.recipient_name, row.language)
        except (KeyError, TypeError, ValueError) as exc:
            # A row no code can read again: close it with the reason rather than retry forever.
            record = AttemptRecord(
                attempt=row.attempts + 1,
                at=self._clock(),
                status=SendStatus.REJECTED.value,
                latency_ms=0.0,
                error=f"stored notification unreadable: {short_error(exc)}",
            )
            async with self._pool.connection() as conn, conn.transaction():
                done = await finish_attempt(
                    conn, delivery_id=row.id, claimed_by=token, attempt=record, status="rejected"
                )
            log.error(
                "delivery unreadable",
                delivery_id=row.id,
                change_id=row.change_id,
                error=record.error,
            )
            return _outcome(done or row, duplicate=done is None)
        target = Target(
            channel=row.channel,
            address=row.address,
            secret=row.target_secret,
            p256dh=row.p256dh,
            auth=row.auth,
            subscription_id=row.subscription_id,
        )
        return await self._drive(row, notification, recipient, target, token, fresh=False)

    async def _attempt(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        channel = self._channels.get(target.channel)
        if channel is None:
            return SendResult(SendStatus.REJECTED, f"no channel {target.channel!r} is configured")
        try:
            async with asyncio.timeout(self._attempt_timeout_s):
                return await channel.send(notification, recipient, target)
        except TimeoutError:
            return SendResult(SendStatus.RETRY, f"attempt took over {self._attempt_timeout_s:g} s")
        except Exception as exc:  # a channel bug is a failed attempt, never a lost delivery
            # Not log.exception: the traceback repeats the address's secrets; scrubbed here.
            log.error(
                "channel raised",
                channel=target.channel,
                change_id=notification.change_id,
                address=redact_address(target.channel, target.address),
                traceback=scrub(
                    "".join(traceback.format_exception(exc)), target.address, channel=target.channel
                ),
            )
            return SendResult(SendStatus.RETRY, f"channel raised {short_error(exc)}")

    async def _drive(
        self,
        row: DeliveryRow,
        notification: Notification,
        recipient: Recipient,
        target: Target,
        token: str,
        *,
        fresh: bool,
    ) -> DeliveryOutcome:
        """Attempt, log, back off, until the delivery is final; the caller holds the claim."""
        bound = log.bind(
            delivery_id=row.id,
            change_id=notification.change_id,
            alert_key=notification.alert_key,
            recipient=recipient.key,
            channel=target.channel,
            address=redact_address(target.channel, target.address),
        )
        wait = (row.next_attempt_at - self._clock()).total_seconds()
        if wait > 0:  # taken over while waiting to retry: keep its schedule
            await self._sleep(wait)
        attempt = row.attempts
        while True:
            attempt += 1
            if not fresh:  # renew the lease for this attempt; a lost claim means a rival drives it
                async with self._pool.connection() as conn:
                    now = self._clock()
                    renewed = await claim_delivery(
                        conn,
                        delivery_id=row.id,
                        claimed_by=token,
                        now=now,
                        claimed_until=now + self._lease,
                    )
                    if renewed is None:
                        current = await get_delivery_by_id(conn, delivery_id=row.id)
                        bound.warning("delivery claim lost", attempt=attempt)
                        return _outcome(current or row, duplicate=True)
            fresh = False

            at = self._clock()
            started = time.monotonic()
            result = await self._attempt(notification, recipient, target)
            latency_ms = round((time.monotonic() - started) * 1000.0, 3)
            # Far ends and libraries echo URLs: nothing of the address's secrets is kept or logged.
            detail = scrub(result.detail, target.address, channel=target.channel) or None

            status = _RESULT_TO_STATUS.get(result.status)
            delay = 0.0
            next_at = until = None
            if status is None:  # RETRY
                if attempt >= self._max_attempts:
                    status = DeliveryStatus.FAILED
                else:
                    status = DeliveryStatus.RETRYING
                    delay = self._backoff(attempt)
                    if result.retry_after is not None:
                        delay = max(delay, min(result.retry_after, self._max_retry_after_s))
                    next_at = self._clock() + timedelta(seconds=delay)
                    until = next_at + self._lease
            record = AttemptRecord(
                attempt=attempt,
                at=at,
                status=result.status.value,
                latency_ms=latency_ms,
                http_status=result.http_status,
                error=detail,
            )
            async with self._pool.connection() as conn, conn.transaction():
                updated = await finish_attempt(
                    conn,
                    delivery_id=row.id,
                    claimed_by=token,
                    attempt=record,
                    status=status.value,
                    next_attempt_at=next_at,
                    claimed_until=until,
                )
                pruned = False
                if updated is not None and status is DeliveryStatus.GONE and target.subscription_id:
                    pruned = await delete_push_subscription(
                        conn, subscription_id=target.subscription_id
                    )
            bound.info(
                "delivery attempt",
                attempt=attempt,
                result=result.status.value,
                status=status.value,
                latency_ms=latency_ms,
                http_status=result.http_status,
                detail=detail,
                retry_in_s=round(delay, 3) if next_at else None,
            )
            if updated is None:
                bound.warning("delivery claim lost while sending", attempt=attempt)
                async with self._pool.connection() as conn:
                    current = await get_delivery_by_id(conn, delivery_id=row.id)
                return _outcome(current or row, duplicate=True)
            if status is DeliveryStatus.RETRYING:
                await self._sleep(delay)
                continue
            end_to_end = None
            if status is DeliveryStatus.SENT and notification.created_monotonic is not None:
                end_to_end = round((time.monotonic() - notification.created_monotonic) * 1000.0, 3)
            if status is DeliveryStatus.SENT:
                bound.info(
                    "delivered", attempts=attempt, latency_ms=latency_ms, end_to_end_ms=end_to_end
                )
            elif status is DeliveryStatus.GONE:
                bound.info(
                    "push subscription gone", subscription_id=target.subscription_id, pruned=pruned
                )
            else:
                bound.warning(
                    "delivery given up", status=status.value, attempts=attempt, detail=detail
                )
            return _outcome(updated, duplicate=False, end_to_end_ms=end_to_end)
