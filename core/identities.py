"""Who may connect to the MQTT broker, and what each identity may publish or read.

Every sensor, gateway, worker's app and service connects with its own user
name and secret. The broker (Mosquitto) checks them against a password file
and an ACL file rendered here from the identities kept in the database
(`qorgau devices`); with ``use_username_as_clientid`` the client id *is* the
user name, so nobody can take over another identity's session.

What each kind may do (nothing else; in particular nobody may read ``#``):

- a **sensor** publishes its own reading and status topics;
- a **gateway** publishes the reading and status topics of the sensors behind
  it (or of every sensor of its enterprise);
- an **app** (one worker's phone) publishes its reports and reads its notices;
- a **service**: the bridge reads readings, statuses and reports; the notifier
  publishes notices to workers' apps; the API publishes workers' reports (a
  worker's web app posts them to the API, which publishes each on the topic of
  the signed-in worker) and nothing else: it reads nothing.

>>> sensor = MqttIdentity("E001-S01", IdentityKind.SENSOR, "E001", sensors=("E001-S01",))
>>> acl_rules(sensor)
[('write', 'qorgau/v1/E001/sensors/E001-S01/reading'), ('write', 'qorgau/v1/E001/sensors/E001-S01/status')]
>>> acl_rules(MqttIdentity("w.17", IdentityKind.APP, "E001"))
[('write', 'qorgau/v1/E001/app/w.17/report'), ('read', 'qorgau/v1/E001/app/w.17/notify')]
>>> verify_secret("s3cret-s3cret", mosquitto_hash("s3cret-s3cret"))
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SERVICE_RULES",
    "USERNAME",
    "IdentityKind",
    "MqttIdentity",
    "acl_file",
    "acl_rules",
    "mosquitto_hash",
    "password_file",
    "verify_secret",
]

#: A user name is also a topic level (an app's worker id) and a word in the ACL file.
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

#: Mosquitto 2's default for its PBKDF2-SHA512 hashes. The secrets are random (256
#: bits), so the count only has to make a stolen hash useless, not slow guessing.
_ITERATIONS = 101
_SALT_BYTES = 12

READINGS = "qorgau/v1/+/sensors/+/reading"
STATUSES = "qorgau/v1/+/sensors/+/status"
REPORTS = "qorgau/v1/+/app/+/report"
NOTICES = "qorgau/v1/+/app/+/notify"

#: A service's role -> what it may do.
SERVICE_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "bridge": (("read", READINGS), ("read", STATUSES), ("read", REPORTS)),
    "notifier": (("write", NOTICES),),
    "api": (("write", REPORTS),),
}


class IdentityKind(StrEnum):
    SENSOR = "sensor"
    GATEWAY = "gateway"
    APP = "app"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class MqttIdentity:
    """One MQTT identity; ``password_hash`` is in Mosquitto's format (`mosquitto_hash`)."""

    username: str
    kind: IdentityKind
    enterprise_id: str | None = None
    sensors: tuple[str, ...] = ()  # a sensor: itself; a gateway: those behind it
    all_sensors: bool = False  # a gateway for every sensor of its enterprise
    service: str | None = None  # a service's role, a key of SERVICE_RULES
    password_hash: str = ""


def acl_rules(identity: MqttIdentity) -> list[tuple[str, str]]:
    """``(access, topic)`` pairs the broker grants ``identity``; nothing else is allowed."""
    kind, ent = identity.kind, identity.enterprise_id
    if kind is IdentityKind.SERVICE:
        return list(SERVICE_RULES.get(identity.service or "", ()))
    if kind is IdentityKind.APP:
        base = f"qorgau/v1/{ent}/app/{identity.username}"
        return [("write", f"{base}/report"), ("read", f"{base}/notify")]
    sensors = ("+",) if kind is IdentityKind.GATEWAY and identity.all_sensors else identity.sensors
    return [
        ("write", f"qorgau/v1/{ent}/sensors/{sid}/{leaf}")
        for sid in sensors
        for leaf in ("reading", "status")
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def mosquitto_hash(secret: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """``$7$iterations$salt$hash``: PBKDF2-SHA512, as ``mosquitto_passwd`` writes it.

    >>> mosquitto_hash("pw", salt=bytes(12))
    '$7$101$AAAAAAAAAAAAAAAA$bzN2Qihm3+awXnpvx6MIqt5g+Hm37vI7g5PgP29cEczyh9YO+cYD7TtPVh+Bm1//SFcdgHLtq7bcHhdV0JXhuA=='
    """
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, hashed: str) -> bool:
    """Whether ``secret`` matches a `mosquitto_hash` (as the broker will decide)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        mine = hashlib.pbkdf2_hmac(
            "sha512", secret.encode("utf-8"), base64.b64decode(salt), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(_b64(mine), digest)


def password_file(identities: Iterable[MqttIdentity]) -> str:
    """Mosquitto's ``password_file``: one ``user:hash`` line per identity, sorted."""
    return "".join(
        f"{i.username}:{i.password_hash}\n" for i in sorted(identities, key=lambda i: i.username)
    )


def acl_file(identities: Iterable[MqttIdentity]) -> str:
    """Mosquitto's ``acl_file``: each identity's grants under its ``user`` line.

    No rule stands before the first ``user`` line, so a client without one (and
    there are none: anonymous access is off) may do nothing.

    >>> print(acl_file([MqttIdentity("notifier", IdentityKind.SERVICE, service="notifier")]), end="")
    # Written by `qorgau devices sync` from the database; edits here are overwritten.
    <BLANKLINE>
    user notifier
    topic write qorgau/v1/+/app/+/notify
    """
    lines = ["# Written by `qorgau devices sync` from the database; edits here are overwritten."]
    for identity in sorted(identities, key=lambda i: i.username):
        lines += ["", f"user {identity.username}"]
        lines += [f"topic {access} {topic}" for access, topic in acl_rules(identity)]
    return "\n".join(lines) + "\n"
