from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.catalogue import load_catalogue
from core.errors import CatalogueError, InvalidReading
from core.reference import load_reference

HAZARD_IDS = {
    "co",
    "h2s",
    "no2",
    "so2",
    "nh3",
    "cl2",
    "ch4",
    "o2",
    "dust",
    "noise",
    "vibration",
    "temperature",
    "humidity",
    "smoke",
}


def test_catalogue_has_every_hazard_of_the_contract() -> None:
    cat = load_catalogue()
    assert set(cat) >= HAZARD_IDS
    assert cat["ch4"].unit == "%LEL"
    assert cat["o2"].unit == "%vol"
    assert cat["noise"].unit == "dBA"


@pytest.mark.parametrize(
    ("hazard", "molar_mass"),
    [
        ("co", 28.010),
        ("h2s", 34.081),
        ("no2", 46.006),
        ("so2", 64.066),
        ("nh3", 17.031),
        ("cl2", 70.906),
    ],
)
def test_ppm_to_mg_m3_uses_molar_volume_at_25c(hazard: str, molar_mass: float) -> None:
    cat = load_catalogue()
    # mg/m3 = ppm * M / 24.45 at 25 °C and 101.325 kPa
    assert cat.convert(hazard, 10.0, "ppm") == pytest.approx(10.0 * molar_mass / 24.45)
    assert cat.convert(hazard, 1000.0, "ppb") == pytest.approx(molar_mass / 24.45)
    assert cat.convert(hazard, 500.0, "ug/m3") == pytest.approx(0.5)


def test_other_conversions() -> None:
    cat = load_catalogue()
    assert cat.convert("co", 100.0, "ppm") == pytest.approx(114.56, abs=0.01)
    assert cat.convert("ch4", 2.2, "%vol") == pytest.approx(50.0)  # LEL 4.4 %vol
    assert cat.convert("ch4", 4400.0, "ppm") == pytest.approx(10.0)
    assert cat.convert("temperature", 300.0, "K") == pytest.approx(26.85)
    assert cat.convert("temperature", 98.6, "degF") == pytest.approx(37.0)
    assert cat.convert("vibration", 1.0, "g") == pytest.approx(9.80665)
    assert cat.convert("smoke", 10.0, "dB/m") == pytest.approx(90.0)
    assert cat.convert("noise", 85.0, "dBA") == 85.0


def test_unknown_hazard_and_unit_are_refused_with_reason() -> None:
    cat = load_catalogue()
    with pytest.raises(InvalidReading) as e:
        cat.convert("radon", 1.0, "Bq/m3")
    assert e.value.reason == "unknown_hazard"
    with pytest.raises(InvalidReading) as e:
        cat.convert("noise", 1.0, "ppm")
    assert e.value.reason == "unit_not_accepted"


def test_plausibility() -> None:
    cat = load_catalogue()
    assert cat["o2"].is_plausible(20.9)
    assert not cat["o2"].is_plausible(45.0)
    assert not cat["humidity"].is_plausible(-1.0)
    assert cat["co"].is_plausible(-2.0)  # zero drift is not a fault
    assert not math.isnan(cat["temperature"].plausible_max)


BASE = """
[hazards.co]
name_en = "CO"
name_ru = "CO"
category = "gas"
unit = "mg/m3"
accepted_units = ["mg/m3", "ppm"]
molar_mass_g_mol = 28.01
plausible = [0.0, 100.0]
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("molar_mass_g_mol = 28.01\n", ""), "needs molar_mass_g_mol"),
        (('category = "gas"', 'category = "poison"'), "category 'poison'"),
        (
            ('accepted_units = ["mg/m3", "ppm"]', 'accepted_units = ["ppm"]'),
            "must include the canonical unit",
        ),
        (
            ('accepted_units = ["mg/m3", "ppm"]', 'accepted_units = ["mg/m3", "furlong"]'),
            "no known conversion",
        ),
        (("plausible = [0.0, 100.0]", "plausible = [100.0, 0.0]"), "plausible range is empty"),
        (('name_ru = "CO"\n', ""), "missing field(s): name_ru"),
        (('name_ru = "CO"\n', 'name_ru = "CO"\nlimit = 20\n'), "unknown field(s): limit"),
        (("[hazards.co]", "[hazards.co"), "not valid TOML"),
    ],
)
def test_catalogue_loader_names_the_entry_at_fault(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "hazards.toml"
    path.write_text(BASE.replace(*change))
    with pytest.raises(CatalogueError) as e:
        load_catalogue(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_valid_custom_catalogue_loads(tmp_path: Path) -> None:
    path = tmp_path / "hazards.toml"
    path.write_text(BASE)
    cat = load_catalogue(path)
    assert list(cat) == ["co"]
    assert cat.convert("co", 24.45, "ppm") == pytest.approx(28.01)


def test_reference_data() -> None:
    ref = load_reference()
    regions = [r for r in ref.regions if r.kind == "region"]
    cities = [r for r in ref.regions if r.kind == "city"]
    assert len(regions) == 17
    assert {c.center for c in cities} >= {"Astana", "Almaty", "Shymkent"}
    assert len(cities) == 3
    assert {i.code for i in ref.industries} == set("ABCDEFGHIJKLMNOPQRSTU")
    assert len(ref.enterprises) >= 12
    for e in ref.enterprises:
        assert 8 <= len(e.sensors) <= 20, e.id
        assert any(s.hazard == "temperature" for s in e.sensors)
    ids = [s.id for s in ref.sensors]
    assert len(ids) == len(set(ids))


def test_every_limit_names_its_source_and_confirmation() -> None:
    from core.limits import load_limits

    limits = load_limits()
    rules = limits.all_rules()
    # Every hazard but the fire signals and humidity has exposure limits.
    assert {r.hazard for r in rules} >= HAZARD_IDS - {"temperature", "humidity", "smoke"}
    for r in rules:
        assert r.source and r.confirmed in ("source", "secondary", "no")
    noise = next(r for r in limits.rules("noise") if r.kind.value == "twa")
    assert (noise.warning, noise.averaging, noise.exchange_rate_db) == (80.0, "energy", 3.0)
    assert "ҚР ДСМ-15" in noise.source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules.co]]\nkind = "threshold"\nwarning = 1.0\nconfirmed = "no"\n', "legal source"),
        (
            '[[rules.co]]\nkind = "threshold"\nwarning = 1.0\nsource = "x"\nconfirmed = "yes"\n',
            "confirmed must be one of",
        ),
        (
            '[[rules.co]]\nkind = "twa"\nwarning = 1.0\nsource = "x"\nconfirmed = "no"\n',
            "needs window_min",
        ),
        (
            '[[rules.co]]\nkind = "threshold"\nwarning = 9.0\ncritical = 2.0\nsource = "x"\n'
            'confirmed = "no"\n',
            "warning must not be above critical",
        ),
        (
            '[[rules.radon]]\nkind = "threshold"\nwarning = 1.0\nsource = "x"\nconfirmed = "no"\n',
            "hazard not in the catalogue",
        ),
        (
            '[[rules.co]]\nkind = "panic"\nwarning = 1.0\nsource = "x"\nconfirmed = "no"\n',
            "kind must be one of",
        ),
        ('[[rules.co]]\nkind = "threshold"\nsource = "x"\nconfirmed = "no"\n', "at least one of"),
    ],
)
def test_limits_loader_refuses_bad_rules(tmp_path: Path, text: str, message: str) -> None:
    from core.limits import load_limits

    path = tmp_path / "limits.toml"
    path.write_text(text)
    with pytest.raises(CatalogueError) as e:
        load_limits(path)
    assert message in str(e.value)
