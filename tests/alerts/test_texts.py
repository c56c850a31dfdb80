"""Notification texts in Russian and Kazakh, and the notification's wire shape.

Also runs the doctests of the ``alerts`` modules (pytest's doctest collection
does not cover ``alerts/`` on its own).
"""

from __future__ import annotations

import doctest
import importlib
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from alerts.notification import Notification, Recipient
from alerts.texts import Language, format_quantity, hazard_name, render, render_email
from core.catalogue import load_catalogue
from tests.alerts.conftest import make_notification

CATALOGUE = load_catalogue()
CYRILLIC = re.compile(r"[А-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі]")
KAZAKH_ONLY = re.compile(r"[ӘәҒғҚқҢңӨөҰұҮүҺһІі]")
LANGUAGES: tuple[Language, ...] = ("ru", "kk")


@pytest.mark.parametrize(
    "module",
    [
        "alerts.notification",
        "alerts.texts",
        "alerts.delivery",
        "alerts.channels.base",
        "alerts.channels.email",
        "alerts.channels.mqtt",
        "alerts.channels.webhook",
        "alerts.channels.webpush",
    ],
)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_catalogue_hazard_has_a_kazakh_name() -> None:
    same_word = {"nh3", "cl2"}  # «Аммиак», «Хлор» in both languages
    for hazard_id, hazard in CATALOGUE.items():
        n = make_notification(hazard=hazard_id)
        kk = hazard_name(n, "kk")
        assert kk and CYRILLIC.search(kk), hazard_id
        assert (kk == hazard.name_ru) == (hazard_id in same_word), hazard_id
        assert hazard_name(n, "ru") == hazard.name_ru


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("hazard_id", sorted(CATALOGUE))
def test_every_number_is_printed_with_its_unit(hazard_id: str, language: Language) -> None:
    unit = CATALOGUE[hazard_id].unit
    n = make_notification(hazard=hazard_id, unit=unit, value=12.34, limit=10.0)
    r = render(n, language)
    value, limit = format_quantity(12.34, unit, language), format_quantity(10.0, unit, language)
    assert value.startswith("12,3 ") and limit.startswith("10 ")
    for text in (r.text, r.html, r.short):
        assert value in text and limit in text
    assert r.subject.count(hazard_name(n, language) or "?") == 1


def test_kazakh_and_russian_alarm_texts() -> None:
    n = make_notification()
    ru, kk = render(n, "ru"), render(n, "kk")
    assert ru.subject.startswith("Тревога: Оксид углерода")
    assert kk.subject.startswith("Дабыл: Көміртек оксиді")
    assert "Опасный производственный фактор: Оксид углерода" in ru.text
    assert "Қауіпті өндірістік фактор: Көміртек оксиді" in kk.text
    assert KAZAKH_ONLY.search(kk.text) and not KAZAKH_ONLY.search(ru.text)
    assert "01.03.2026 13:00 (UTC+5)" in ru.text  # 08:00 UTC in Kazakhstan time
    warning = render(replace(n, severity="warning"), "kk")
    assert warning.subject.startswith("Ескерту:")
    assert render(replace(n, action="clear"), "ru").subject.startswith("Отбой тревоги")
    assert render(replace(n, action="escalate"), "kk").subject.startswith("Дабыл күшейді")


def test_evacuation_is_short_and_imperative() -> None:
    n = make_notification(purpose="evacuate", action=None, alert_kind="fire", hazard="smoke")
    ru, kk = render(n, "ru"), render(n, "kk")
    assert ru.short == "ЭВАКУАЦИЯ! Немедленно покиньте зону E001-Z02!"
    assert kk.short == "ЭВАКУАЦИЯ! E001-Z02 аймағынан дереу шығыңыз!"
    assert ru.subject.startswith("ЭВАКУАЦИЯ: E001-Z02") and kk.subject.startswith("ЭВАКУАЦИЯ")
    assert ru.text.splitlines()[2] == ru.short  # the order comes first
    assert "Эвакуация жолдарымен" in kk.text
    no_zone = render(replace(n, zone_id=None), "kk")
    assert no_zone.short == "ЭВАКУАЦИЯ! Қауіпті аймақтан дереу шығыңыз!"


def test_sos_reminder_escalation_and_digest() -> None:
    sos = make_notification(
        alert_kind="sos", hazard=None, sensor_id="worker:W17", value=None, unit=None, limit=None
    )
    assert render(sos, "ru").subject.startswith("Тревога: Сигнал SOS от работника")
    assert "Қызметкер: W17" in render(sos, "kk").text
    assert "не подтвердил" in render(replace(sos, purpose="escalation"), "ru").text
    assert "расталмаған" in render(replace(sos, purpose="reminder"), "kk").text

    items = (
        make_notification(severity="warning", value=25.0),
        make_notification(severity="warning", hazard="noise", unit="dBA", value=87.3, limit=80.0),
    )
    digest = make_notification(
        purpose="digest", alert_key=None, action=None, severity="warning", items=items
    )
    ru = render(digest, "ru")
    assert ru.subject.startswith("Сводка предупреждений (2)")
    assert "25 мг/м³ (норматив 20 мг/м³)" in ru.text and "87,3 дБА (норматив 80 дБА)" in ru.text
    assert ru.html.count("<li>") == 2
    assert render(digest, "kk").short.startswith("Ескертулер: 2")


def test_html_escapes_every_piece_of_data() -> None:
    hostile = '<b onmouseover="x">&\''
    n = make_notification(
        enterprise_name=hostile,
        enterprise_id=hostile,
        zone_id=hostile,
        sensor_id=hostile,
        message=hostile,
        link='https://q.kz/a?x="><script>',
    )
    for language in LANGUAGES:
        html = render(n, language).html
        assert "<b " not in html and "<script>" not in html
        assert "&lt;b onmouseover=&quot;x&quot;&gt;&amp;&#x27;" in html
        assert 'href="https://q.kz/a?x=&quot;&gt;&lt;script&gt;"' in html
    mail = render_email(n, "ru").html
    assert "<b " not in mail and "<script>" not in mail
    assert "<title>" in mail and hostile not in mail
    # Only http(s) becomes a link.
    assert "href" not in render(replace(n, link="javascript:alert(1)"), "ru").html


def test_email_text_carries_both_languages_recipients_first() -> None:
    n = make_notification()
    cases: list[tuple[Language, Language, str, str]] = [
        ("ru", "kk", "Тревога:", "Дабыл:"),
        ("kk", "ru", "Дабыл:", "Тревога:"),
    ]
    for first, second, first_marker, second_marker in cases:
        mail = render_email(n, first)
        assert mail.subject == render(n, first).subject
        assert mail.text.index(first_marker) < mail.text.index(second_marker)
        assert mail.html.index(f'lang="{first}"') < mail.html.index(f'lang="{second}"')
        assert CYRILLIC.search(mail.text)


def test_payload_is_json_ready_and_round_trips() -> None:
    items = (make_notification(severity="warning"),)
    n = make_notification(
        purpose="digest",
        items=items,
        ts=datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=5))),
    )
    payload = n.payload()
    assert payload["ts"] == "2026-03-01T08:00:00Z"
    assert payload["items"][0]["change_id"] == items[0].change_id
    assert "created_monotonic" not in payload
    again = Notification.from_payload(payload)
    assert again == n and again.items == items


def test_shapes_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="purpose"):
        make_notification(purpose="gossip")
    with pytest.raises(ValueError, match="severity"):
        make_notification(severity="meh")
    with pytest.raises(ValueError, match="aware"):
        make_notification(ts=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="language"):
        Recipient("user:1", "x", "en")  # type: ignore[arg-type]
    assert Recipient.of("user:1", "x", "en").language == "ru"
