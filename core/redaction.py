"""Redaction: where a message went, never how to send another.

Delivery addresses carry their credentials: a webhook or apprise URL its token in
the path or query (or, for ``tgram://TOKEN/chat`` and the like, in the "host"), a
URL its ``user:password@``, a Web Push endpoint is itself a capability. Whatever
leaves the process — a log line, a stored error, an API answer — shows an address
as `redact_address` makes it and passes free text through `scrub`. The notifier's
delivery log (`alerts.delivery`) and the API (`api.schemas`) use these, and only these.

Rules: a URL keeps its scheme and a host that looks like one (name or IP, and a
port); a push endpoint also says that something followed (``/…``); the scheme
alone (``scheme://…``) when the "host" may be a secret (apprise services other than
plain HTTP-like ones, anything unknown). E-mail addresses and MQTT topics are shown
as they are. Anything else is ``…``.

>>> redact_address("webhook", "https://hooks.example.com:8443/T0K3N/x?sig=abc")
'https://hooks.example.com:8443'
>>> redact_address("webpush", "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91b")
'https://fcm.googleapis.com/…'
>>> redact_address("apprise", "json://user:pw@alerts.example.kz/hook?token=1")
'json://alerts.example.kz'
>>> redact_address("apprise", "tgram://123456:AAHdqTcvCH1vGWJxfSeof/-1001234")
'tgram://…'
>>> redact_address("email", "inspector@example.kz")
'inspector@example.kz'
>>> redact_address("mqtt", "qorgau/v1/E001/app/W17/notify")
'qorgau/v1/E001/app/W17/notify'
>>> redact_address("webhook", "not a url at all")
'…'
"""

from __future__ import annotations

import re

__all__ = ["redact_address", "redact_url", "scrub"]

# Schemes whose host part is a real host. In the others (tgram://TOKEN/..., discord://ID/
# TOKEN..., ntfy://TOPIC, an unknown scheme) the "host" may itself be the secret.
_HOSTED = frozenset(
    {"http", "https", "ws", "wss", "json", "jsons", "xml", "xmls", "form", "forms"}
    | {"mailto", "mailtos", "gotify", "gotifys", "mmost", "mmosts", "ntfys"}
    | {"mqtt", "mqtts", "tcp", "smtp", "smtps", "postgres", "postgresql", "kafka"}
)
# What a host[:port] may look like to be shown: a name, an IPv4 or a bracketed IPv6.
_SHOWN_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
# A URL inside free text: a scheme, "://", and everything up to a space or a quote, less
# the punctuation that ends a sentence ("cannot reach https://h.example: 403").
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://(?:[^\s\"'<>`]*[^\s\"'<>`.,:;!?)\]}])?")
# Channels whose addresses are not secrets (and are shown as they are).
_PLAIN_CHANNELS = frozenset({"email", "mqtt"})
# Pieces of an address shorter than this say nothing and would match ordinary words.
_MIN_SECRET = 6
_MASK = "…"


def _url_parts(address: str) -> tuple[str, str, str, str] | None:
    """(scheme, user info, host[:port], path+query+fragment) of a URL; None if it is none.

    >>> _url_parts("tgram://123:ABC@x/-100?a=b")
    ('tgram', '123:ABC', 'x', '/-100?a=b')
    >>> _url_parts("inspector@example.kz") is None
    True
    """
    scheme, sep, rest = address.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return None
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, _, host = netloc.rpartition("@")
    return scheme.lower(), userinfo, host, tail


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of a URL, or ``scheme://…`` when its host may be a secret.

    >>> redact_url("mqtt://bridge:s3cret@broker.example.kz:1883")
    'mqtt://broker.example.kz:1883'
    >>> redact_url("https://user:pa/ss@example.kz/x")  # an unescaped '/' in a password
    'https://…'
    >>> redact_url("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js")
    'discord://…'
    >>> redact_url("no scheme")
    '…'
    """
    parts = _url_parts(url)
    if parts is None:
        return _MASK
    scheme, _, host, _ = parts
    if scheme in _HOSTED and _SHOWN_HOST.fullmatch(host):
        return f"{scheme}://{host}"
    return f"{scheme}://{_MASK}"


def redact_address(channel: str, address: str) -> str:
    """The delivery address ``address`` of ``channel`` as logs and the API show it."""
    if channel in _PLAIN_CHANNELS:
        return address
    shown = redact_url(address)
    if channel == "webpush" and not shown.endswith(_MASK):
        return f"{shown}/{_MASK}"
    return shown


def _secret_pieces(address: str) -> list[str]:
    """The parts of ``address`` that must not show anywhere, longest first."""
    parts = _url_parts(address)
    if parts is None:
        return [address]
    scheme, userinfo, host, tail = parts
    pieces = [address, tail, userinfo, *userinfo.split(":")]
    if scheme not in _HOSTED or not _SHOWN_HOST.fullmatch(host):
        pieces += [host, *host.split(":")]
    path, _, query = tail.partition("?")
    pieces += path.split("/")
    pieces += [v for pair in query.split("&") for v in pair.split("=")[1:]]
    return sorted({p for p in pieces if len(p) >= _MIN_SECRET}, key=len, reverse=True)


def scrub(text: str, address: str | None = None, *, channel: str | None = None) -> str:
    """``text`` (an error, a log message) without secrets: every URL in it redacted, and
    nothing of ``address`` (a delivery's own, on ``channel``) beyond its redacted form.

    Far ends and libraries echo what they were given: an HTTP client error names the
    URL, a Telegram error the bot's API path (``/bot<TOKEN>/sendMessage``).

    >>> scrub("POST https://h.example/T0K3N?sig=1: 403", "https://h.example/T0K3N?sig=1")
    'POST https://h.example: 403'
    >>> tg = "tgram://123456:AAHdqTcvCH1vGWJx/-1001234567"
    >>> scrub(f"cannot reach {tg}", tg)
    'cannot reach tgram://…'
    >>> scrub("HTTPError for api.telegram.org/bot123456:AAHdqTcvCH1vGWJx/sendMessage", tg)
    'HTTPError for api.telegram.org/bot…/sendMessage'
    >>> scrub("connect to smtp://qorgau:hunter22@mail.example.kz:587 failed")
    'connect to smtp://mail.example.kz:587 failed'
    >>> scrub("bad chat id", tg)
    'bad chat id'
    >>> scrub("550 no mailbox inspector@example.kz", "inspector@example.kz", channel="email")
    '550 no mailbox inspector@example.kz'
    """
    if address and channel not in _PLAIN_CHANNELS:
        text = text.replace(address, redact_url(address))
        for piece in _secret_pieces(address):
            text = text.replace(piece, _MASK)
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
