"""Evidence in words: the rule an alert crossed and its figures, zh and en, with units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.config import default_rules
from alerts.engine import ZoneState, process_reading
from alerts.explain import (
    CATEGORY_WORDS,
    CHANGE_WORDS,
    KIND_WORDS,
    LEVEL_WORDS,
    RISK_WORDS,
    explain,
)
from models.contracts import Change, Level, ReportCategory, Risk, SensorKind, SensorReading
from models.zones import LocalizedText, Zone

pytestmark = pytest.mark.unit

RULES = default_rules()
T0 = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)  # 19:00 Beijing time
ZONE = Zone(
    id="lane-1",
    name=LocalizedText(zh="一号弄", en="Lane 1"),
    site="tzf",
    grid="zhongtai",
    area_m2=420.0,
    capacity=1000,
)


def reading(kind: SensorKind, value: float, minute: float, sensor: str) -> SensorReading:
    return SensorReading(
        reading_id=f"{sensor}@{minute}",
        sensor_id=sensor,
        zone_id=ZONE.id,
        kind=kind,
        value=value,
        observed_at=T0 + timedelta(minutes=minute),
    )


def test_wording_tables_cover_every_risk_change_level_kind_and_category() -> None:
    for table, enum in [
        (RISK_WORDS, Risk),
        (CHANGE_WORDS, Change),
        (LEVEL_WORDS, Level),
        (KIND_WORDS, SensorKind),
        (CATEGORY_WORDS, ReportCategory),
    ]:
        assert set(table) == set(enum), enum
        for words in table.values():
            assert all(isinstance(w, str) for w in words) and words[0] and words[1]


def test_occupancy_rule_in_words_from_what_the_engine_wrote() -> None:
    state = ZoneState(ZONE.id)
    (record,) = process_reading(
        state, reading(SensorKind.PEOPLE_COUNT, 1206, 0, "cam-1"), ZONE, RULES
    ).records
    assert record.level == Level.RED and record.evidence["occupancy"] == 1.206
    words = explain(record.risk, record.level, record.evidence, RULES)
    assert words.zh == "承载率 121 % ≥ 120 % → 红"
    assert words.en == "occupancy 121 % ≥ 120 % → red"
    figures = {f.zh: f.value for f in words.figures}
    assert figures["承载率"] == "121 %（容量 1000 人）"
    assert figures["人数"] == "1206 人" and figures["人群密度"] == "2.87 人/㎡"


def test_density_rule_in_words_where_the_zone_has_no_capacity() -> None:
    evidence = {"people": 2100.0, "density": 5.0, "area_m2": 420.0, "reading_id": "r"}
    words = explain(Risk.CROWDING, Level.RED, evidence, RULES)
    assert words.zh == "人群密度 5 人/㎡ ≥ 5 人/㎡ → 红"
    assert "reading_id" not in words.zh + words.en and "r" not in [f.value for f in words.figures]


def test_two_smoke_detectors_within_the_window() -> None:
    state = ZoneState(ZONE.id)
    process_reading(state, reading(SensorKind.SMOKE, 1, 0, "smk-1"), ZONE, RULES)
    (red,) = process_reading(state, reading(SensorKind.SMOKE, 1, 2, "smk-2"), ZONE, RULES).records
    words = explain(red.risk, red.level, red.evidence, RULES)
    assert words.zh == "两个烟感 5 分钟内报警 → 红"
    assert words.en == "2 smoke detectors in alarm within 5 min → red"


def test_a_threshold_sensor_with_its_unit() -> None:
    state = ZoneState(ZONE.id)
    (gas,) = process_reading(
        state, reading(SensorKind.GAS_LEL, 30, 0, "lel-1"), ZONE, RULES
    ).records
    words = explain(gas.risk, gas.level, gas.evidence, RULES)
    assert words.zh == "可燃气体浓度 30 % LEL ≥ 25 % LEL → 橙"
    assert "lel-1" not in words.zh + words.en


def test_a_forecast_says_its_expected_time_in_beijing_time() -> None:
    evidence = {
        "people": 800.0,
        "density": 1.9,
        "forecast": {
            "target_level": "orange",
            "target_density": 2.381,
            "expected_at": "2026-10-01T11:09:00+00:00",
            "minutes": 9.0,
            "rate_per_min": 0.0833,
            "fitted_density": 1.9,
            "window_minutes": 5,
        },
    }
    words = explain(Risk.CROWDING, Level.YELLOW, evidence, RULES, predicted=True)
    assert words.expected_clock == "19:09" and words.expected_at == "2026-10-01T11:09:00+00:00"
    assert "约 19:09 达到橙色" in words.zh and "at about 19:09" in words.en
    assert words.zh.endswith("→ 黄")


def test_threshold_summaries_name_the_measure_with_its_unit_not_its_key() -> None:
    state = ZoneState(ZONE.id)
    (water,) = process_reading(
        state, reading(SensorKind.WATER_DEPTH, 32.5, 0, "wd-1"), ZONE, RULES
    ).records
    assert "积水深度 32.5 cm" in water.summary.zh and "water_depth" not in water.summary.zh
    assert "water depth 32.5 cm" in water.summary.en
