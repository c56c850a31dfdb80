"""Notifications in words people read: Russian and Kazakh subjects, texts, HTML and one-liners.

`render` gives one language; `render_email` gives both (the recipient's
language first, then the other), as an e-mail to a mixed workforce should.
Every number is printed with its unit, with a decimal comma; times are shown
in Kazakhstan time (UTC+5, the single national zone since March 2024).
Everything taken from data is escaped in HTML, and a link is only made of an
``http(s)`` URL.

Russian hazard names come from the deployment's catalogue, carried by the
notification (``hazard_name``, filled by the dispatcher); Kazakh names are kept
here for the catalogue's ids, falling back to the Russian name for an id
added to the catalogue later.

>>> from datetime import UTC, datetime
>>> from alerts.notification import Notification
>>> n = Notification(
...     change_id="c1", purpose="alert", enterprise_id="E001",
...     enterprise_name="Казцинк <Риддер>", alert_key="k1", action="open",
...     alert_kind="threshold", severity="critical", hazard="co", sensor_id="E001-S07",
...     zone_id="E001-Z02", value=250.0, unit="mg/m3", limit=20.0,
...     ts=datetime(2026, 3, 1, 8, 0, tzinfo=UTC), message="CO 250 mg/m3 over 20 mg/m3",
...     hazard_name="Оксид углерода")
>>> ru = render(n, "ru")
>>> ru.subject
'Тревога: Оксид углерода — Казцинк <Риддер>'
>>> ru.short
'Оксид углерода: 250 мг/м³ (норматив 20 мг/м³), зона E001-Z02'
>>> kk = render(n, "kk")
>>> kk.subject
'Дабыл: Көміртек оксиді — Казцинк <Риддер>'
>>> kk.short
'Көміртек оксиді: 250 мг/м³ (шекті мән 20 мг/м³), аймақ E001-Z02'
>>> "Казцинк &lt;Риддер&gt;" in ru.html and "<Риддер>" not in ru.html
True
>>> print(kk.text.splitlines()[2])
Қауіпті өндірістік фактор: Көміртек оксиді
>>> from dataclasses import replace
>>> evac = replace(n, purpose="evacuate", action=None)
>>> render(evac, "ru").short
'ЭВАКУАЦИЯ! Немедленно покиньте зону E001-Z02!'
>>> render(evac, "kk").short
'ЭВАКУАЦИЯ! E001-Z02 аймағынан дереу шығыңыз!'
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from alerts.notification import Notification

__all__ = [
    "KAZAKHSTAN_TIME",
    "Language",
    "Rendered",
    "format_number",
    "format_quantity",
    "hazard_name",
    "hazard_name_kk",
    "render",
    "render_email",
]

Language = Literal["ru", "kk"]

# Kazakhstan has kept one time zone, UTC+5, since 1 March 2024; a fixed offset
# avoids depending on the host's tzdata being new enough to know that.
KAZAKHSTAN_TIME = timezone(timedelta(hours=5), "UTC+5")

_HAZARDS_KK: dict[str, str] = {
    "co": "Көміртек оксиді",
    "h2s": "Күкіртсутек",
    "no2": "Азот диоксиді",
    "so2": "Күкірт диоксиді",
    "nh3": "Аммиак",
    "cl2": "Хлор",
    "ch4": "Метан (жанғыш газ)",
    "o2": "Оттегі",
    "dust": "Шаң (негізінен фиброгенді әсер ететін аэрозоль)",
    "noise": "Шу, дыбыс деңгейі",
    "vibration": "Діріл, түзетілген діріл үдеуі",
    "temperature": "Ауа температурасы",
    "humidity": "Салыстырмалы ылғалдылық",
    "smoke": "Түтіндену (оптикалық тығыздық)",
}

# Units as people write them; an unknown unit is printed as it came.
_UNITS: dict[str, dict[str, str]] = {
    "ru": {
        "mg/m3": "мг/м³",
        "ug/m3": "мкг/м³",
        "ppm": "ppm",
        "ppb": "ppb",
        "%LEL": "% НКПР",
        "%vol": "% об.",
        "dBA": "дБА",
        "m/s2": "м/с²",
        "degC": "°C",
        "%RH": "%",
        "%obs/m": "%/м",
    },
    "kk": {
        "mg/m3": "мг/м³",
        "ug/m3": "мкг/м³",
        "ppm": "ppm",
        "ppb": "ppb",
        "%LEL": "% НКПР",
        "%vol": "% көл.",
        "dBA": "дБА",
        "m/s2": "м/с²",
        "degC": "°C",
        "%RH": "%",
        "%obs/m": "%/м",
    },
}

_KINDS: dict[str, dict[str, str]] = {
    "ru": {
        "threshold": "превышение порога",
        "ceiling": "превышение предельно допустимого значения",
        "stel": "превышение кратковременной (15 мин) экспозиции",
        "twa": "превышение среднесменной экспозиции",
        "fire": "признаки пожара",
        "anomaly": "аномальные показания",
        "sensor_fault": "неисправность датчика",
        "stale": "датчик не передаёт данные",
        "sos": "сигнал SOS от работника",
    },
    "kk": {
        "threshold": "шекті мәннен асу",
        "ceiling": "шекті рұқсат етілген мәннен асу",
        "stel": "қысқа мерзімді (15 мин) әсер шегінен асу",
        "twa": "ауысымдық орташа әсер шегінен асу",
        "fire": "өрт белгілері",
        "anomaly": "қалыптан тыс көрсеткіштер",
        "sensor_fault": "датчик ақауы",
        "stale": "датчик деректер жібермейді",
        "sos": "қызметкерден SOS белгісі",
    },
}

_WORDS: dict[str, dict[str, str]] = {
    "ru": {
        "alarm": "Тревога",
        "warning": "Предупреждение",
        "escalate": "Тревога усилена",
        "clear_critical": "Отбой тревоги",
        "clear_warning": "Отбой предупреждения",
        "retract": "Тревога отозвана",
        "evacuate": "ЭВАКУАЦИЯ",
        "reminder": "Тревога не подтверждена",
        "escalation": "Тревога без ответа",
        "digest": "Сводка предупреждений",
        "factor": "Опасный производственный фактор",
        "event": "Событие",
        "value": "Значение",
        "limit": "норматив",
        "enterprise": "Предприятие",
        "zone": "зона",
        "Zone": "Зона",
        "sensor": "датчик",
        "Sensor": "Датчик",
        "worker": "работник",
        "Worker": "Работник",
        "time": "Время",
        "details": "Подробности",
        "open": "Открыть в Qorgau",
        "count": "Предупреждений",
        "evacuate_zone": "Немедленно покиньте зону {zone}!",
        "evacuate_any": "Немедленно покиньте опасную зону!",
        "evacuate_more": "Следуйте к пункту сбора по путям эвакуации, не пользуйтесь лифтами.",
        "reason": "Причина",
        "escalation_more": "Ответственный не подтвердил тревогу вовремя; она передана вам.",
        "reminder_more": "Тревога всё ещё открыта и не подтверждена.",
        "clear_more": "Условие больше не выполняется; тревогу нужно закрыть с указанием причины.",
        "retract_more": "Тревога открыта по ошибочному порядку показаний и заменена верной.",
    },
    "kk": {
        "alarm": "Дабыл",
        "warning": "Ескерту",
        "escalate": "Дабыл күшейді",
        "clear_critical": "Дабыл тоқтатылды",
        "clear_warning": "Ескерту тоқтатылды",
        "retract": "Дабыл жойылды",
        "evacuate": "ЭВАКУАЦИЯ",
        "reminder": "Дабыл расталмады",
        "escalation": "Дабылға жауап жоқ",
        "digest": "Ескертулер жиынтығы",
        "factor": "Қауіпті өндірістік фактор",
        "event": "Оқиға",
        "value": "Мәні",
        "limit": "шекті мән",
        "enterprise": "Кәсіпорын",
        "zone": "аймақ",
        "Zone": "Аймақ",
        "sensor": "датчик",
        "Sensor": "Датчик",
        "worker": "қызметкер",
        "Worker": "Қызметкер",
        "time": "Уақыты",
        "details": "Толығырақ",
        "open": "Qorgau жүйесінде ашу",
        "count": "Ескертулер",
        "evacuate_zone": "{zone} аймағынан дереу шығыңыз!",
        "evacuate_any": "Қауіпті аймақтан дереу шығыңыз!",
        "evacuate_more": "Эвакуация жолдарымен жиналу пунктіне барыңыз, лифтіні пайдаланбаңыз.",
        "reason": "Себебі",
        "escalation_more": "Жауапты адам дабылды уақытында растамады; ол сізге жіберілді.",
        "reminder_more": "Дабыл әлі ашық және расталмаған.",
        "clear_more": "Қауіпті жағдай тоқтады; дабылды себебін көрсетіп жабу керек.",
        "retract_more": "Дабыл көрсеткіштердің қате ретімен ашылған және дұрысымен ауыстырылды.",
    },
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A notification in one language (or, from `render_email`, in both).

    ``subject`` is the e-mail subject and the push title; ``text`` the plain
    body; ``html`` an escaped HTML fragment (a whole document from
    `render_email`); ``short`` one line for a push body, an SMS or the app.
    """

    subject: str
    text: str
    html: str
    short: str


def hazard_name(n: Notification, language: Language) -> str | None:
    """The hazard's name in ``language``: Kazakh from this module, Russian from the
    deployment's catalogue (carried by the notification); the id itself otherwise.

    >>> from dataclasses import replace
    >>> from datetime import UTC
    >>> n = Notification(change_id="c", purpose="alert", enterprise_id="E001",
    ...     enterprise_name="", alert_key=None, action="open", alert_kind="threshold",
    ...     severity="warning", hazard="h2s", sensor_id=None, zone_id=None, value=None,
    ...     unit=None, limit=None, ts=datetime(2026, 3, 1, tzinfo=UTC), message="",
    ...     hazard_name="Сероводород")
    >>> hazard_name(n, "kk"), hazard_name(n, "ru")
    ('Күкіртсутек', 'Сероводород')
    >>> hazard_name(replace(n, hazard="radon", hazard_name=None), "kk")
    'radon'
    """
    if not n.hazard:
        return None
    if language == "kk" and n.hazard in _HAZARDS_KK:
        return _HAZARDS_KK[n.hazard]
    return n.hazard_name or n.hazard


def hazard_name_kk(hazard: str) -> str | None:
    """A hazard's name in Kazakh, if known.

    >>> hazard_name_kk("co"), hazard_name_kk("radon")
    ('Көміртек оксиді', None)
    """
    return _HAZARDS_KK.get(hazard)


def format_number(value: float) -> str:
    """A reading as people write it: a few significant digits, decimal comma.

    >>> format_number(250.0), format_number(12.46), format_number(0.6183), format_number(-3.0)
    ('250', '12,5', '0,618', '-3')
    """
    magnitude = abs(value)
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(".", ",")


def format_quantity(value: float, unit: str | None, language: Language) -> str:
    """A number with its unit.

    >>> format_quantity(5.0, "%LEL", "ru"), format_quantity(41.26, "degC", "kk")
    ('5 % НКПР', '41,3 °C')
    """
    number = format_number(value)
    if not unit:
        return number
    return f"{number} {_UNITS[language].get(unit, unit)}"


def _time(ts: datetime) -> str:
    return ts.astimezone(KAZAKHSTAN_TIME).strftime("%d.%m.%Y %H:%M (UTC+5)")


def _headline(n: Notification, w: dict[str, str]) -> str:
    if n.purpose == "alert":
        if n.action == "escalate":
            return w["escalate"]
        if n.action == "clear":
            return w["clear_critical" if n.severity == "critical" else "clear_warning"]
        if n.action == "retract":
            return w["retract"]
        return w["alarm" if n.severity == "critical" else "warning"]
    return w[n.purpose]


def _subject_what(n: Notification, language: Language) -> str:
    # An SOS names no hazard worth a headline: the worker's call is the news.
    name = None if n.alert_kind == "sos" else hazard_name(n, language)
    what = name or _KINDS[language].get(n.alert_kind or "", n.alert_kind or "")
    return what[:1].upper() + what[1:] if what else "—"


def _reading(n: Notification, language: Language) -> str | None:
    """'250 мг/м³ (норматив 20 мг/м³)', or None when the change carries no value."""
    if n.value is None:
        return None
    out = format_quantity(n.value, n.unit, language)
    if n.limit is not None:
        out += f" ({_WORDS[language]['limit']} {format_quantity(n.limit, n.unit, language)})"
    return out


def _where(n: Notification, language: Language, *, capital: bool = False) -> str | None:
    w = _WORDS[language]
    if n.zone_id:
        return f"{w['Zone' if capital else 'zone']} {n.zone_id}"
    if n.sensor_id:
        return _source(n.sensor_id, w, capital=capital)
    return None


def _source(sensor_id: str, w: dict[str, str], *, capital: bool) -> str:
    if sensor_id.startswith("worker:"):
        return f"{w['Worker' if capital else 'worker']} {sensor_id.removeprefix('worker:')}"
    return f"{w['Sensor' if capital else 'sensor']} {sensor_id}"


def _evacuation_order(n: Notification, w: dict[str, str]) -> str:
    order = w["evacuate_zone"].format(zone=n.zone_id) if n.zone_id else w["evacuate_any"]
    return f"{w['evacuate']}! {order}"


def _item_line(item: Notification, language: Language) -> str:
    parts = [_time(item.ts)[11:16], _subject_what(item, language)]
    head = " ".join(parts)
    reading = _reading(item, language)
    detail = [_KINDS[language].get(item.alert_kind or "", item.alert_kind or "")]
    if item.sensor_id:
        detail.append(_source(item.sensor_id, _WORDS[language], capital=False))
    if item.zone_id:
        detail.append(f"{_WORDS[language]['zone']} {item.zone_id}")
    tail = ", ".join(d for d in detail if d)
    return f"{head}: {reading} — {tail}" if reading else f"{head} — {tail}"


def _facts(n: Notification, language: Language) -> list[tuple[str, str]]:
    """The labelled lines of the body, in order (label, value)."""
    w = _WORDS[language]
    facts: list[tuple[str, str]] = []
    name = hazard_name(n, language)
    if name and n.alert_kind != "sos":
        facts.append((w["factor"], name))
    if n.alert_kind:
        facts.append((w["event"], _KINDS[language].get(n.alert_kind, n.alert_kind)))
    reading = _reading(n, language)
    if reading:
        facts.append((w["value"], reading))
    facts.append((w["enterprise"], f"{n.enterprise_name or n.enterprise_id} ({n.enterprise_id})"))
    if n.zone_id:
        facts.append((w["Zone"], n.zone_id))
    if n.sensor_id:
        label, _, ident = _source(n.sensor_id, w, capital=True).partition(" ")
        facts.append((label, ident))
    facts.append((w["time"], _time(n.ts)))
    return facts


def _explanation(n: Notification, w: dict[str, str]) -> str | None:
    if n.purpose == "evacuate":
        return w["evacuate_more"]
    if n.purpose in ("reminder", "escalation"):
        return w[f"{n.purpose}_more"]
    if n.purpose == "alert" and n.action in ("clear", "retract"):
        return w[f"{n.action}_more"]
    return None


def _safe_link(link: str | None) -> str | None:
    if link and link.lower().startswith(("https://", "http://")):
        return link
    return None


def render(notification: Notification, language: Language) -> Rendered:
    """Render ``notification`` for a reader of ``language`` (``"ru"`` or ``"kk"``)."""
    if language not in _WORDS:
        raise ValueError(f"language {language!r} is not 'ru' or 'kk'")
    n = notification
    w = _WORDS[language]
    enterprise = n.enterprise_name or n.enterprise_id
    headline = _headline(n, w)

    if n.purpose == "digest":
        subject = f"{headline} ({len(n.items)}) — {enterprise}"
        short = f"{w['count']}: {len(n.items)} — {enterprise}"
    elif n.purpose == "evacuate":
        subject = f"{headline}: {n.zone_id or _subject_what(n, language)} — {enterprise}"
        short = _evacuation_order(n, w)
    else:
        what = _subject_what(n, language)
        subject = f"{headline}: {what} — {enterprise}"
        reading = _reading(n, language)
        where = _where(n, language)
        short = f"{what}: {reading}" if reading else what
        if where:
            short += f", {where}"
        if n.purpose != "alert" or n.action not in (None, "open"):
            short = f"{headline}. {short}"

    lines = [subject, ""]
    reason = None
    if n.purpose == "evacuate":
        lines += [_evacuation_order(n, w), w["evacuate_more"]]
        cause = [hazard_name(n, language), _reading(n, language)]
        if any(cause):
            reason = f"{w['reason']}: {' '.join(x for x in cause if x)}."
            lines.append(reason)
        lines.append("")
    facts = [] if n.purpose == "digest" else _facts(n, language)
    lines.extend(f"{label}: {value}" for label, value in facts)
    if n.purpose == "digest":
        lines.append(f"{w['enterprise']}: {enterprise} ({n.enterprise_id})")
        lines.extend(f"• {_item_line(item, language)}" for item in n.items)
    explanation = None if n.purpose == "evacuate" else _explanation(n, w)
    if explanation:
        lines.extend(["", explanation])
    if n.message:
        lines.append(f"{w['details']}: {n.message}")
    link = _safe_link(n.link)
    if link:
        lines.append(f"{w['open']}: {link}")
    text = "\n".join(lines)

    e = html.escape
    colour = "#b00020" if n.critical else "#8a5a00"
    parts = [
        f'<div lang="{language}" style="font-family:Arial,sans-serif">',
        f'<h2 style="color:{colour};margin:0 0 8px">{e(subject)}</h2>',
    ]
    if n.purpose == "evacuate":
        parts.append(
            f'<p style="font-size:1.3em"><strong>{e(_evacuation_order(n, w))}</strong></p>'
        )
        parts.append(f"<p>{e(w['evacuate_more'])}</p>")
        if reason:
            parts.append(f"<p>{e(reason)}</p>")
    if facts:
        parts.append('<table cellpadding="4" style="border-collapse:collapse">')
        parts.extend(
            f'<tr><th align="left">{e(label)}</th><td>{e(value)}</td></tr>'
            for label, value in facts
        )
        parts.append("</table>")
    if n.purpose == "digest":
        parts.append(f"<p>{e(w['enterprise'])}: {e(enterprise)} ({e(n.enterprise_id)})</p>")
        parts.append("<ul>")
        parts.extend(f"<li>{e(_item_line(item, language))}</li>" for item in n.items)
        parts.append("</ul>")
    if explanation:
        parts.append(f"<p>{e(explanation)}</p>")
    if n.message:
        parts.append(f'<p style="color:#555">{e(w["details"])}: {e(n.message)}</p>')
    if link:
        parts.append(f'<p><a href="{e(link, quote=True)}">{e(w["open"])}</a></p>')
    parts.append("</div>")
    return Rendered(subject=subject, text=text, html="\n".join(parts), short=short)


def render_email(notification: Notification, language: Language) -> Rendered:
    """Both languages, ``language`` first: subject and short line in ``language``.

    >>> from datetime import UTC, datetime
    >>> from alerts.notification import Notification
    >>> n = Notification(change_id="c", purpose="evacuate", enterprise_id="E001",
    ...     enterprise_name="ArcelorMittal", alert_key="k", action=None, alert_kind="fire",
    ...     severity="critical", hazard="smoke", sensor_id=None, zone_id="E001-Z01",
    ...     value=None, unit=None, limit=None, ts=datetime(2026, 3, 1, tzinfo=UTC), message="")
    >>> mail = render_email(n, "kk")
    >>> mail.subject
    'ЭВАКУАЦИЯ: E001-Z01 — ArcelorMittal'
    >>> mail.text.index("аймағынан дереу шығыңыз") < mail.text.index("Немедленно покиньте зону")
    True
    """
    other: Language = "kk" if language == "ru" else "ru"
    first, second = render(notification, language), render(notification, other)
    text = f"{first.text}\n\n{'—' * 24}\n\n{second.text}\n"
    document = (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(first.subject)}</title></head><body>\n"
        f'{first.html}\n<hr style="margin:24px 0">\n{second.html}\n</body></html>\n'
    )
    return Rendered(subject=first.subject, text=text, html=document, short=first.short)
