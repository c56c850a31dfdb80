"""Reading a roster of workers (core.roster): every bad line reported by its number, the
good ones whole, and no file at all — however strange — read any other way."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.activation import ALPHABET, CODE_BITS, code_hash, code_key, new_code, normalise_code
from core.identities import USERNAME
from core.roster import (
    MAX_BYTES,
    MAX_ROWS,
    RosterRefused,
    normalise_phone,
    parse_roster,
    worker_username,
)

ZONES = {"E001-Z01": "Casthouse", "E001-Z02": "Rolling mill", "E001-Z03": "Rolling mill"}


def test_russian_header_semicolons_and_a_bom_as_excel_writes_them() -> None:
    data = (
        "\ufeffФИО;Табельный номер;Участок;Телефон\r\n"
        "Иванов Иван Иванович;00417;casthouse;8 (701) 234-56-78\r\n"
        '"Сейітқали, Айгүл";00418;E001-Z01;+7 777 000 11 22\r\n'
    ).encode()
    roster = parse_roster(data, zones=ZONES)
    assert roster.errors == ()
    assert [(r.line, r.name, r.personnel_number, r.zone_id, r.phone) for r in roster.rows] == [
        (2, "Иванов Иван Иванович", "00417", "E001-Z01", "+77012345678"),
        (3, "Сейітқали, Айгүл", "00418", "E001-Z01", "+77770001122"),
    ]


def test_english_header_in_any_order_and_without_phone() -> None:
    roster = parse_roster(
        b"Zone,Personnel_Number,Name\nE001-Z02,7,Anna Li\n\n   \nE001-Z02,8,Ben Ode\n", zones=ZONES
    )
    assert [(r.line, r.phone) for r in roster.rows] == [(2, None), (5, None)]
    assert roster.rows_read == 2  # blank lines are neither workers nor errors


def test_each_bad_line_is_reported_by_its_own_line_number() -> None:
    lines = [
        "name,personnel_number,zone,phone",  # 1
        "Good One,1,E001-Z01,+77012345678",  # 2
        "Unknown Zone,2,Z99,",  # 3
        "Bad Phone,3,E001-Z01,12345",  # 4
        "Twice,4,E001-Z01,",  # 5
        ",5,E001-Z01,",  # 6: empty name
        "Too,6,E001-Z01,,many",  # 7
        'Broken "quote,7,E001-Z01,',  # 8
        "Twice Again,4,E001-Z01,",  # 9
        "Ambiguous,9,Rolling mill,",  # 10: two zones have this name
        "Good Two,10,E001-Z02,8 701 000 00 00",  # 12 after the undecodable line 11
    ]
    data = "\n".join(lines[:10]).encode() + b"\nLatin1 \xe9t\xe9,11,E001-Z01,\n"
    data += (lines[10] + "\n").encode()
    roster = parse_roster(data, zones=ZONES)
    assert [r.line for r in roster.rows] == [2, 12]
    got = [(e.line, e.column) for e in roster.errors]
    assert got == [
        (3, "zone"),
        (4, "phone"),
        (5, "personnel_number"),
        (6, "name"),
        (7, None),
        (8, "name"),
        (9, "personnel_number"),
        (10, "zone"),
        (11, None),
    ]
    messages = {e.line: e.message for e in roster.errors}
    assert "also on line(s) 9" in messages[5]
    assert "5 fields where the header has 4" in messages[7]
    assert "not UTF-8: byte 0xE9" in messages[11]
    assert "E001-Z02, E001-Z03" in messages[10]
    assert roster.rows_read == 11


def test_a_quote_left_open_costs_its_own_line_only() -> None:
    roster = parse_roster(
        b'name;personnel_number;zone\n"Open;1;E001-Z01\nNext;2;E001-Z01\n', zones=ZONES
    )
    assert [r.line for r in roster.rows] == [3]
    assert [(e.line, e.message.split(":")[0]) for e in roster.errors] == [(2, "broken quoting")]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"name,zone\nA,E001-Z01\n", "missing personnel_number"),
        (b"name,personnel_number,zone,position\n", "unknown column(s) 'position'"),
        (b"name,name,personnel_number,zone\n", "more than once"),
        ("ФИО;Табельный номер;Участок\n".encode("cp1251"), "not UTF-8"),
        (b"x" * (MAX_BYTES + 1), "over 10 MiB"),
        (b"name,personnel_number,zone\n" + b"A,1,E001-Z01\n" * (MAX_ROWS + 1), "at most 20,000"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(data: bytes, words: str) -> None:
    with pytest.raises(RosterRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_roster(data, zones=ZONES)


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+7 701 234 56 78", "+77012345678"),
        ("8 (701) 234-56-78", "+77012345678"),
        ("87012345678", "+77012345678"),
        ("7012345678", "+77012345678"),
        ("0099890 123 45 67", "+99890123 4567".replace(" ", "")),
        ("+998 90 123 45 67", "+998901234567"),
    ],
)
def test_phones_become_e164(written: str, e164: str) -> None:
    assert normalise_phone(written) == e164


@pytest.mark.parametrize(
    "written",
    [
        "12345",
        "+7 012 345 67 89",
        "+7 701 234 56 7",
        "7.70123E+10",
        "+0123456789",
        "+7 70I 234 56 78",
    ],
)
def test_phones_that_are_none_are_refused(written: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(written)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.lists(st.sampled_from(
    [b"name", b"personnel_number", b"zone", b"phone", b"\xd0\xa4\xd0\x98\xd0\x9e", b",", b";",
     b'"', b"\n", b"\r", b"\x00", b"\xff", b"E001-Z01", b"7", b"+7701234567", b" "]
), max_size=60).map(b"".join))  # fmt: skip
def test_any_bytes_are_read_or_refused_never_half(data: bytes) -> None:
    header = b"name,personnel_number,zone,phone\n"
    for candidate in (data, header + data):
        try:
            roster = parse_roster(candidate, zones=ZONES)
        except RosterRefused as exc:
            assert exc.message
            continue
        bad = {e.line for e in roster.errors}
        # A line is either a whole worker or refused, never both; each worker complete.
        assert not bad & {r.line for r in roster.rows}
        assert len(roster.rows) + len(bad) == roster.rows_read
        for row in roster.rows:
            assert row.name and row.personnel_number and row.zone_id in ZONES
            assert "\x00" not in row.name + row.personnel_number
            assert row.phone is None or row.phone.startswith("+")


@given(st.text(min_size=1, max_size=40), st.sampled_from(["E001", "E_9.x", "Z"]))
def test_every_derived_user_name_is_a_valid_mqtt_user_name(number: str, enterprise: str) -> None:
    taken: set[str] = set()
    for _ in range(3):
        name = worker_username(enterprise, number, taken=taken)
        assert USERNAME.match(name) and 3 <= len(name) <= 64
        assert name not in taken
        taken.add(name)


def test_codes_have_60_bits_and_read_back_however_typed() -> None:
    assert CODE_BITS >= 50
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000 and set("".join(codes)) <= set(ALPHABET)
    code = next(iter(codes))
    typed = f" {code[:4].lower()} {code[4:8]}-{code[8:]}".replace("0", "o").replace("1", "l")
    assert normalise_code(typed) == code
    key = code_key("secret")
    assert code_hash(typed, key) == code_hash(code, key) != code_hash(code, code_key("other"))
    assert normalise_code(code[:11]) is None
    assert normalise_code(code + "X" * 60) is None
