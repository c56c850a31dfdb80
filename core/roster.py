"""A roster of an enterprise's workers, read from a CSV file (no I/O: bytes in, rows out).

One worker per line, under a header row naming the columns ``name``,
``personnel_number``, ``zone`` and (optionally) ``phone`` — in English or Russian
(``ФИО``, ``Табельный номер``, ``Участок``, ``Телефон``; Kazakh too), in any order.
The file is UTF-8 with or without a byte-order mark; fields are separated by commas,
or by semicolons as Excel writes CSV in a Russian locale (or tabs), and may be quoted.

Every line is read on its own, so one broken line (a quote never closed, bytes that
are not UTF-8, a field too many) is reported with its line number — the line an
editor shows — and costs nothing but itself. A file that cannot be read at all (too
large, no header we know, not UTF-8 from its first line) is refused whole
(`RosterRefused`). The API and ``qorgau users import-workers`` both read files here,
so both say the same about the same file.

>>> zones = {"E001-Z01": "Casthouse", "E001-Z02": "Rolling mill"}
>>> roster = parse_roster(
...     "ФИО;Табельный номер;Участок;Телефон\\n"
...     "Иванов Иван;1001;Casthouse;8 (701) 234-56-78\\n"
...     "Петров Пётр;1002;Nowhere;+7 701 000 00 00\\n".encode(),
...     zones=zones,
... )
>>> roster.rows[0]
RosterRow(line=2, name='Иванов Иван', personnel_number='1001', zone_id='E001-Z01', phone='+77012345678')
>>> [(e.line, e.column, e.message[:19]) for e in roster.errors]
[(3, 'zone', "no zone 'Nowhere' a")]
>>> worker_username("E001", "Б-17/3", taken=set())
'e001.b-17-3'
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import defaultdict
from collections.abc import Container, Mapping
from dataclasses import dataclass

from core.errors import QorgauError
from core.identities import USERNAME

__all__ = [
    "COLUMNS",
    "MAX_BYTES",
    "MAX_NAME",
    "MAX_PERSONNEL_NUMBER",
    "MAX_ROWS",
    "Roster",
    "RosterRefused",
    "RosterRow",
    "RowError",
    "normalise_phone",
    "parse_roster",
    "worker_username",
]

MAX_BYTES = 10 * 1024 * 1024  # 10 MiB: 20,000 workers take about 1.5 MiB
MAX_ROWS = 20_000  # workers per file; a larger enterprise imports in parts
MAX_NAME = 200  # characters
MAX_PERSONNEL_NUMBER = 32  # characters
_MAX_SHOWN = 200  # characters of a refused value echoed back

COLUMNS = ("name", "personnel_number", "zone", "phone")
_REQUIRED = ("name", "personnel_number", "zone")
# Header words, compared casefolded, with ё as е, runs of spaces, '_' and '.' as one space.
_ALIASES = {
    "name": {
        "name",
        "full name",
        "fullname",
        "fio",
        "фио",
        "ф и о",
        "фамилия имя отчество",
        "имя",
        "сотрудник",
        "работник",
        "аты-жөні",
        "аты жөні",
    },
    "personnel_number": {
        "personnel number",
        "personnel no",
        "personnel",
        "employee number",
        "employee id",
        "табельный номер",
        "табельный №",
        "таб №",
        "таб номер",
        "табельный",
        "табель нөмірі",
        "табельдік нөмір",
    },
    "zone": {"zone", "zone id", "workplace", "участок", "зона", "цех", "аймақ", "учаске"},
    "phone": {
        "phone",
        "telephone",
        "mobile",
        "phone number",
        "телефон",
        "тел",
        "мобильный",
        "мобильный телефон",
        "номер телефона",
        "телефон нөмірі",
    },
}
_HEADER_WORD = {alias: column for column, aliases in _ALIASES.items() for alias in aliases}
_DELIMITERS = (",", ";", "\t")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one line of the file was not taken; ``column`` is None for the line as a whole."""

    line: int
    column: str | None
    value: str | None
    message: str


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One worker as the file gives them, checked: ``zone_id`` resolved, ``phone`` in E.164."""

    line: int
    name: str
    personnel_number: str
    zone_id: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class Roster:
    rows: tuple[RosterRow, ...]  # the good lines, in file order
    errors: tuple[RowError, ...]  # the bad ones, by line
    rows_read: int  # lines under the header that were not blank (count)


class RosterRefused(QorgauError):
    """The file cannot be read at all; nothing of it is taken."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.message = message
        self.line = line


def _shown(value: str) -> str:
    return value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"


def _header_word(cell: str) -> str:
    word = _SPACES.sub(" ", cell.replace("_", " ").replace(".", " ")).strip()
    return word.casefold().replace("ё", "е")


def _read_header(text: str, line: int) -> tuple[str, list[str]]:
    """The delimiter and the columns, in file order, of the header ``text``."""
    best: list[str] = []
    for delimiter in _DELIMITERS:
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True), [])
        except csv.Error:
            continue
        columns = [_HEADER_WORD.get(_header_word(c), "") for c in cells]
        if all(columns) and set(_REQUIRED) <= set(columns):
            duplicated = sorted({c for c in columns if columns.count(c) > 1})
            if duplicated:
                raise RosterRefused(
                    f"the header names {', '.join(duplicated)} more than once", line=line
                )
            return delimiter, columns
        if len(cells) > len(best):
            best = cells
    known = "name, personnel_number, zone, phone (or ФИО, Табельный номер, Участок, Телефон)"
    unknown = [c for c in best if not _HEADER_WORD.get(_header_word(c))]
    missing = [c for c in _REQUIRED if c not in {_HEADER_WORD.get(_header_word(b)) for b in best}]
    detail = (
        f"unknown column(s) {', '.join(repr(_shown(c)) for c in unknown)}; " if unknown else ""
    ) + (f"missing {', '.join(missing)}; " if missing else "")
    raise RosterRefused(
        f"the first line must be the header: {detail}the columns are {known},"
        " separated by commas or semicolons",
        line=line,
    )


def _control_character(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"U+{ord(ch):04X}"
    return None


def _text(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


def normalise_phone(text: str) -> str:
    """``text`` as an E.164 number (``+77012345678``); `ValueError` saying why it is none.

    Kazakhstan's and Russia's numbers may be written the local way (``8 701 234 56 78``,
    ``7012345678``); other countries' need their ``+`` or ``00``.

    >>> normalise_phone("8 (701) 234-56-78"), normalise_phone("+998 90 123 45 67")
    ('+77012345678', '+998901234567')
    >>> normalise_phone("7.70123E+10")
    Traceback (most recent call last):
    ...
    ValueError: written as a number in scientific notation (Excel does that): format the column as text
    """
    compact = re.sub(r"[\s\-().\u00a0]", "", text)
    if re.fullmatch(r"\d+(,\d+)?[Ee]\+?\d+", compact) or re.fullmatch(
        r"\d\.\d+[Ee]\+?\d+", text.strip()
    ):
        raise ValueError(
            "written as a number in scientific notation (Excel does that): format the column"
            " as text"
        )
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+"):
        digits = compact[1:]
    elif len(compact) == 11 and compact[0] in "78":
        digits = "7" + compact[1:]
    elif len(compact) == 10:
        digits = "7" + compact
    else:
        raise ValueError(
            "not a phone number: give it as +7 701 234 56 78, 8 701 234 56 78 or with its"
            " country code"
        )
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("a phone number has only digits after its +")
    if digits.startswith("7"):
        if len(digits) != 11 or digits[1] not in "3456789":
            raise ValueError("a number of Kazakhstan or Russia is +7 and ten digits")
    elif not 8 <= len(digits) <= 15 or digits[0] == "0":
        raise ValueError("an international number is + and 8 to 15 digits, not starting with 0")
    return "+" + digits


def _zone_resolver(zones: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    by_id = {zone_id.casefold(): zone_id for zone_id in zones}
    by_name: dict[str, list[str]] = defaultdict(list)
    for zone_id, name in zones.items():
        by_name[_text(name).casefold()].append(zone_id)
    return by_id, by_name


def parse_roster(data: bytes, *, zones: Mapping[str, str]) -> Roster:
    """The workers of ``data`` (a CSV file's bytes) whose every field is good, and an error
    for each field (or line) that is not; ``zones`` are the enterprise's, id -> name.

    Raises `RosterRefused` for a file that cannot be read at all.
    """
    if len(data) > MAX_BYTES:
        raise RosterRefused(f"the file is over {MAX_BYTES // (1024 * 1024)} MiB: split it")
    data = data.removeprefix(_BOM)
    lines = _LINE_BREAK.split(data)
    header_at = next((i for i, raw in enumerate(lines) if raw.strip()), None)
    if header_at is None:
        raise RosterRefused("the file is empty: it needs a header row and a line per worker")
    try:
        header_text = lines[header_at].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RosterRefused(
            "the file is not UTF-8 text (in Excel: Save As, 'CSV UTF-8'): "
            f"byte 0x{lines[header_at][exc.start]:02X} at position {exc.start + 1}",
            line=header_at + 1,
        ) from exc
    delimiter, columns = _read_header(header_text, header_at + 1)
    body = [(i + 1, raw) for i, raw in enumerate(lines) if i > header_at and raw.strip()]
    if len(body) > MAX_ROWS:
        raise RosterRefused(f"{len(body):,} workers: at most {MAX_ROWS:,} per file, split it")

    by_id, by_name = _zone_resolver(zones)
    errors: list[RowError] = []
    parsed: list[RosterRow] = []
    for line, raw in body:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                RowError(
                    line,
                    None,
                    _shown(raw.decode("utf-8", "replace")),
                    f"not UTF-8: byte 0x{raw[exc.start]:02X} at position {exc.start + 1}"
                    " (save the file as UTF-8)",
                )
            )
            continue
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            errors.append(RowError(line, None, _shown(text), f"broken quoting: {exc}"))
            continue
        if len(cells) != len(columns):
            errors.append(
                RowError(
                    line,
                    None,
                    _shown(text),
                    f"{len(cells)} fields where the header has {len(columns)}"
                    f" (separated by {delimiter!r}; quote a field that holds one)",
                )
            )
            continue
        row = _check_row(line, dict(zip(columns, cells, strict=True)), by_id, by_name, zones)
        if isinstance(row, RosterRow):
            parsed.append(row)
        else:
            errors += row

    # A personnel number twice in the file: which line is right is not ours to guess.
    lines_of: dict[str, list[int]] = defaultdict(list)
    for row in parsed:
        lines_of[row.personnel_number].append(row.line)
    good: list[RosterRow] = []
    for row in parsed:
        others = [n for n in lines_of[row.personnel_number] if n != row.line]
        if others:
            errors.append(
                RowError(
                    row.line,
                    "personnel_number",
                    row.personnel_number,
                    "the same personnel number is also on line(s) "
                    + ", ".join(map(str, others))
                    + ": keep one",
                )
            )
        else:
            good.append(row)
    errors.sort(key=lambda e: e.line)
    return Roster(rows=tuple(good), errors=tuple(errors), rows_read=len(body))


def _check_row(
    line: int,
    fields: dict[str, str],
    by_id: dict[str, str],
    by_name: dict[str, list[str]],
    zones: Mapping[str, str],
) -> RosterRow | list[RowError]:
    errors: list[RowError] = []

    def bad(column: str, message: str) -> None:
        errors.append(RowError(line, column, _shown(fields.get(column, "")), message))

    for column in COLUMNS:
        control = _control_character(fields.get(column, ""))
        if control:
            bad(column, f"holds a control character ({control})")
        elif '"' in fields.get(column, ""):
            # No name, number, zone or phone has one: it is a quote gone astray.
            bad(column, 'broken quoting: a stray " (quote the whole field, or remove it)')
    if errors:
        return errors
    name = _text(fields["name"])
    if not name:
        bad("name", "the name is empty")
    elif len(name) > MAX_NAME:
        bad("name", f"longer than {MAX_NAME} characters")
    number = _text(fields["personnel_number"])
    if not number:
        bad("personnel_number", "the personnel number is empty")
    elif len(number) > MAX_PERSONNEL_NUMBER:
        bad("personnel_number", f"longer than {MAX_PERSONNEL_NUMBER} characters")
    zone = _text(fields["zone"])
    zone_id = by_id.get(zone.casefold())
    if not zone:
        bad("zone", "the zone is empty: give its id or name")
    elif zone_id is None:
        named = by_name.get(zone.casefold(), [])
        if len(named) == 1:
            zone_id = named[0]
        elif named:
            bad("zone", f"{len(named)} zones have this name ({', '.join(named)}): give the id")
        else:
            some = ", ".join(f"{z} {n}" for z, n in sorted(zones.items())[:8])
            bad("zone", f"no zone {zone!r} at this enterprise (its zones: {some or 'none'})")
    phone: str | None = None
    if _text(fields.get("phone", "")):
        try:
            phone = normalise_phone(fields["phone"])
        except ValueError as exc:
            bad("phone", str(exc))
    if errors:
        return errors
    assert zone_id is not None
    return RosterRow(line, name, number, zone_id, phone)


# Russian and Kazakh letters as Latin ones, for user names (which are ASCII: they are
# MQTT user names and topic levels too).
_LATIN = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "i",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "sch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
            "a",
            "g",
            "q",
            "n",
            "o",
            "u",
            "u",
            "h",
            "i",
        ],
        strict=True,
    )
)


def worker_username(enterprise_id: str, personnel_number: str, *, taken: Container[str]) -> str:
    """A user name for a new worker: ``<enterprise>.<personnel number>`` in lower-case Latin
    letters, digits and hyphens, made unique against ``taken`` with ``-2``, ``-3``...

    Always a valid MQTT user name (`core.identities.USERNAME`) and users-table name.

    >>> worker_username("E001", "00417", taken={"e001.00417"})
    'e001.00417-2'
    """
    slug = "".join(
        c if c.isascii() and c.isalnum() else _LATIN.get(c, "-") for c in personnel_number.lower()
    )
    slug = re.sub(r"-{2,}", "-", slug).strip("-") or "w"
    base = f"{enterprise_id.lower()}.{slug}"[:58]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    assert USERNAME.match(name) and len(name) >= 3, name
    return name
