"""Secrets of the local stack, kept in its state directory (``QORGAU_STATE_DIR``).

In development nobody sets keys, and none may be published in the source: the
first process of a local stack that needs one makes it at random and keeps it
in the state directory (mode 0600), and every other process of that stack (the
API, the notifier, the workers) reads the same file, so they agree on it.
`local_secret` is the one way to do that: the JWT and webhook secrets
(`core.settings.Settings`) and the VAPID key (`alerts.channels.webpush`) use it.

>>> import tempfile
>>> state = tempfile.TemporaryDirectory()
>>> first = local_secret(Path(state.name) / "new", "jwt-secret")
>>> len(first) >= 43  # 32 random bytes, base64url
True
>>> local_secret(Path(state.name) / "new", "jwt-secret") == first
True
>>> oct((Path(state.name) / "new" / "jwt-secret").stat().st_mode & 0o777)
'0o600'
>>> local_secret(Path(state.name), "pem", make=lambda: "made once") == "made once"
True
>>> state.cleanup()
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["local_secret", "random_secret", "write_private"]


def random_secret() -> str:
    """32 random bytes as base64url text (43 characters)."""
    return secrets.token_urlsafe(32)


def local_secret(state_dir: Path, name: str, make: Callable[[], str] = random_secret) -> str:
    """The secret kept in ``state_dir / name``, made with ``make`` (mode 0600) on first use.

    Processes starting together all end up with the same secret: it is written whole
    under a temporary name, then linked into place, so whoever links first wins and
    nobody ever reads half a file. The text is returned as stored; checking that it is
    usable is the caller's business.
    """
    path = state_dir / name
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    value = make()
    tmp = state_dir / f".{name}.{os.getpid()}.{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value)
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="ascii")
    finally:
        tmp.unlink(missing_ok=True)
    return value


def write_private(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` atomically, readable by its owner only (mode 0600):
    a key, a secret, a broker's password file. Nobody ever reads half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
