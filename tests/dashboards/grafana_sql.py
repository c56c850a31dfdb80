"""What Grafana does to a panel's SQL before PostgreSQL sees it, for the tests.

No Grafana runs here, so this expands a query the way Grafana 12 does: the
browser first interpolates template variables (``$name``, ``${name}``,
``${name:format}``) and ``$__interval``/``$__interval_ms``, then the PostgreSQL
data source expands its macros (``$__timeFilter(col)``, ``$__timeFrom()``,
``$__timeTo()``, ``$__timeGroup(col, interval)``, ``$__timeGroupAlias(...)``) as
its Go macro engine does with ``timescaledb: false``: a macro is ``$__name(args)``
with no ``)`` inside the arguments, times are RFC 3339 in UTC, a time group is
``floor(extract(epoch from col)/secs)*secs``. Anything left unexpanded (an unknown
variable or macro) is an error, so a typo in a wall fails its test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Range", "expand", "interval_for", "parse_interval"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_NICE = (1, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400)
_MACRO = re.compile(r"\$(__[A-Za-z0-9_]+)\(([^)]*)\)")
_BRACED = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([A-Za-z]+))?\}")
_BARE = re.compile(r"\$([A-Za-z0-9_]+)")


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def parse_interval(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip().strip("'"))
    if m is None:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return float(m[1]) * _UNITS[m[2]]


def _interval_text(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{int(seconds * 1000)}ms"


def interval_for(span: Range, min_interval: str | None, max_data_points: int = 1000) -> float:
    """``$__interval`` in seconds: the range over the data points, rounded up to a nice
    step, and never below the panel's minimum interval."""
    raw = span.seconds / max_data_points
    nice = next((n for n in _NICE if n >= raw), _NICE[-1])
    low = parse_interval(min_interval) if min_interval else 0.0
    return max(nice, low)


def _rfc3339(t: datetime) -> str:
    text = t.astimezone(UTC).isoformat()
    if "." in text:  # Go's RFC3339Nano trims trailing zeros of the fraction
        head, _, tail = text.partition(".")
        frac, _, _zone = tail.partition("+")
        frac = frac.rstrip("0")
        text = head + ("." + frac if frac else "") + "+00:00"
    return text.replace("+00:00", "Z")


def _format(value: str | list[str], fmt: str | None) -> str:
    values = value if isinstance(value, list) else [value]
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt in (None, "raw", "text", "csv"):
        return ",".join(values)
    raise ValueError(f"variable format {fmt!r} not modelled here")


def expand(
    sql: str, *, span: Range, interval_s: float, variables: dict[str, str | list[str]]
) -> str:
    """``sql`` as PostgreSQL would receive it from Grafana."""
    text = sql.replace("$__interval_ms", str(int(interval_s * 1000)))
    text = text.replace("$__interval", _interval_text(interval_s))

    def braced(m: re.Match[str]) -> str:
        name, fmt = m[1], m[2]
        if name not in variables:
            raise KeyError(f"unknown variable ${{{name}}}")
        return _format(variables[name], fmt)

    def bare(m: re.Match[str]) -> str:
        name = m[1]
        if name.startswith("__"):
            return m[0]  # a macro, expanded below
        if name not in variables:
            raise KeyError(f"unknown variable ${name}")
        return _format(variables[name], None)

    text = _BARE.sub(bare, _BRACED.sub(braced, text))
    start, end = _rfc3339(span.start), _rfc3339(span.end)

    def macro(m: re.Match[str]) -> str:
        name = m[1]
        args = [a.strip() for a in m[2].split(",")]
        if name == "__timeGroup" and text[m.end() : m.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility, as it does
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        if name == "__timeFrom":
            return f"'{start}'"
        if name == "__timeTo":
            return f"'{end}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            secs = f"{parse_interval(args[1]):g}"
            group = f"floor(extract(epoch from {args[0]})/{secs})*{secs}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise KeyError(f"unknown macro ${name}")

    text = _MACRO.sub(macro, text)
    if "$" in text:
        raise ValueError(f"left unexpanded: {text[text.index('$') :][:60]!r}")
    return text
