"""One-time activation codes: how a worker imported from a roster sets their own password.

A code is 12 symbols of Crockford's base32 (60 random bits), printed in three groups
of four (``7K2M-9QXD-H4TA``) so it can be typed from a paper slip: case does not matter,
the groups' hyphens and spaces are optional, and the letters people confuse with
digits are read as those digits (``O`` as ``0``, ``I`` and ``L`` as ``1``). Only a keyed
hash of a code is ever stored (`code_hash`), so the table of codes is of no use without
the server's secret.

>>> normalise_code(" 7k2m 9qxd-h4ta ")
'7K2M9QXDH4TA'
>>> normalise_code("oooo-iiii-llll")
'000011111111'
>>> normalise_code("7K2M-9QXD-H4T") is None  # 11 symbols
True
>>> normalise_code("7K2M-9QXD-H4TU") is None  # no U in Crockford's alphabet
True
>>> format_code("7K2M9QXDH4TA")
'7K2M-9QXD-H4TA'
>>> len(new_code()), set(new_code()) <= set(ALPHABET)
(12, True)
>>> key = code_key("server secret")
>>> code_hash("7k2m-9qxd-h4ta", key) == code_hash("7K2M9QXDH4TA", key)
True
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta

__all__ = [
    "ALPHABET",
    "CODE_BITS",
    "CODE_LENGTH",
    "CODE_VALID_FOR",
    "code_hash",
    "code_key",
    "format_code",
    "new_code",
    "normalise_code",
]

#: Crockford's base32: digits and letters without I, L, O and U.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
CODE_BITS = int(CODE_LENGTH * math.log2(len(ALPHABET)))  # 60
CODE_VALID_FOR = timedelta(days=14)  # a code not used by then is void; issue a new one
_READ_AS = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = str.maketrans("", "", "- \t")


def new_code() -> str:
    """A fresh code, `CODE_LENGTH` symbols from the system's random source."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``code`` in groups of four, as printed on a slip and sent in a link."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_code(text: str) -> str | None:
    """The code ``text`` names (upper case, no separators), or None when it cannot be one."""
    if len(text) > 4 * CODE_LENGTH:  # nobody types that much around twelve symbols
        return None
    symbols = "".join(_READ_AS.get(c, c) for c in text.translate(_SEPARATORS).upper())
    if len(symbols) != CODE_LENGTH or not set(symbols) <= set(ALPHABET):
        return None
    return symbols


def code_key(secret: str) -> bytes:
    """The key codes are hashed with, derived from the server's token secret (so a stolen
    copy of the database alone cannot be searched for codes; changing the secret voids
    the codes not used yet)."""
    return hmac.new(secret.encode("utf-8"), b"qorgau activation codes v1", hashlib.sha256).digest()


def code_hash(code: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalised ``code`` under ``key``, in hex (what is stored)."""
    normal = normalise_code(code)
    if normal is None:
        raise ValueError(f"not an activation code: {code!r}")
    return hmac.new(key, normal.encode("ascii"), hashlib.sha256).hexdigest()
