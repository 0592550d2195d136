"""Why an alert fired, in words: the rule it crossed and its figures with units, zh and en.

Pure: from an alert's risk, level and evidence (as published) and the zone's rules to sentences a
person reads — "承载率 121 % ≥ 120 % → 红", "两个烟感 5 分钟内报警 → 红". No raw keys or ids in
the text (the raw evidence stays available beside it); times in Beijing time. The wording tables
cover every risk, change and level (``tests/core/test_explain.py`` checks they do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from pydantic import JsonValue

from alerts.config import ZoneRules
from models.contracts import Change, Level, ReportCategory, Risk, SensorKind
from models.timezone import BEIJING

LEVEL_WORDS: Final[dict[Level, tuple[str, str]]] = {
    Level.BLUE: ("蓝", "blue"),
    Level.YELLOW: ("黄", "yellow"),
    Level.ORANGE: ("橙", "orange"),
    Level.RED: ("红", "red"),
}
RISK_WORDS: Final[dict[Risk, tuple[str, str]]] = {
    Risk.CROWDING: ("人群拥挤", "Crowding"),
    Risk.FIRE: ("火情", "Fire"),
    Risk.GAS: ("燃气泄漏", "Gas leak"),
    Risk.ELECTRICAL: ("电气火灾隐患", "Electrical fire risk"),
    Risk.FLOODING: ("积水", "Standing water"),
    Risk.MANHOLE: ("井盖异常", "Manhole cover"),
    Risk.FIRE_LANE: ("消防通道占用", "Fire lane blocked"),
    Risk.EBIKE: ("电动车进电梯", "E-bike in a lift"),
    Risk.SENSOR_OFFLINE: ("设备离线", "Sensor offline"),
    Risk.REPORT: ("志愿者报告", "Volunteer report"),
}
CHANGE_WORDS: Final[dict[Change, tuple[str, str]]] = {
    Change.RAISED: ("触发", "Raised"),
    Change.ESCALATED: ("升级", "Escalated"),
    Change.DEESCALATED: ("降级", "De-escalated"),
    Change.ACKNOWLEDGED: ("已确认", "Acknowledged"),
    Change.ASSIGNED: ("已指派", "Assigned"),
    Change.CONFIRMED: ("预判成真", "Forecast confirmed"),
    Change.CORROBORATED: ("志愿者印证", "Corroborated by a volunteer"),
    Change.RESOLVED: ("已解除", "Resolved"),
    Change.REOPENED: ("重新触发", "Reopened"),
}
#: What a threshold sensor measures: (zh, en, unit). An empty unit: a yes/no sensor.
KIND_WORDS: Final[dict[SensorKind, tuple[str, str, str]]] = {
    SensorKind.PEOPLE_COUNT: ("人数", "people", "人"),
    SensorKind.ENTRIES: ("进入人数", "entries", "人"),
    SensorKind.EXITS: ("离开人数", "exits", "人"),
    SensorKind.SMOKE: ("烟感", "smoke detector", ""),
    SensorKind.GAS_LEL: ("可燃气体浓度", "gas", "% LEL"),
    SensorKind.CIRCUIT_TEMP: ("线路温度", "circuit temperature", "°C"),
    SensorKind.LEAK_CURRENT: ("剩余电流", "leakage current", "mA"),
    SensorKind.WATER_DEPTH: ("积水深度", "water depth", "cm"),
    SensorKind.MANHOLE_TILT: ("井盖倾角", "manhole tilt", "°"),
    SensorKind.FIRE_LANE_BLOCKED: ("消防通道被占", "fire lane blocked", ""),
    SensorKind.EBIKE_IN_ELEVATOR: ("电梯内检测到电动车", "e-bike detected in the lift", ""),
    SensorKind.HEARTBEAT: ("心跳", "heartbeat", ""),
}
CATEGORY_WORDS: Final[dict[ReportCategory, tuple[str, str]]] = {
    ReportCategory.INJURY: ("有人受伤", "injury"),
    ReportCategory.FIRE: ("火情", "fire"),
    ReportCategory.SMOKE: ("烟雾", "smoke"),
    ReportCategory.CROWDING: ("人员拥挤", "crowding"),
    ReportCategory.GAS: ("燃气异味", "gas smell"),
    ReportCategory.ELECTRICAL: ("电气隐患", "electrical hazard"),
    ReportCategory.FLOODING: ("积水", "flooding"),
    ReportCategory.MANHOLE: ("井盖问题", "manhole"),
    ReportCategory.FIRE_LANE: ("消防通道被占", "fire lane blocked"),
    ReportCategory.EBIKE: ("电动车进电梯", "e-bike in a lift"),
    ReportCategory.LITTERING: ("乱扔垃圾", "littering"),
    ReportCategory.OTHER: ("其他", "other"),
}
_NUMBERS_ZH: Final = {
    1: "一",
    2: "两",
    3: "三",
    4: "四",
    5: "五",
    6: "六",
    7: "七",
    8: "八",
    9: "九",
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure behind an alert: its name and its value with the unit, in zh and en."""

    zh: str
    en: str
    value: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """The rule the alert crossed (one line per language), its figures, and for a forecast the
    expected time (Beijing time, ``HH:MM``) and the instant itself."""

    zh: str
    en: str
    figures: list[Figure] = field(default_factory=list)
    expected_at: str | None = None
    expected_clock: str | None = None


def _num(value: float, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _count_zh(n: int) -> str:
    return _NUMBERS_ZH.get(n, str(n))


def _minutes(seconds: float) -> str:
    return _num(seconds / 60.0)


def _float(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _arrow(level: Level) -> tuple[str, str]:
    zh, en = LEVEL_WORDS[level]
    return f"→ {zh}", f"→ {en}"


def beijing_clock(moment: datetime) -> str:
    """``HH:MM`` of ``moment`` in Beijing time."""
    return moment.astimezone(BEIJING).strftime("%H:%M")


def measured(kind: SensorKind, value: float) -> tuple[str, str]:
    """A sensor's value in words with its unit: ("可燃气体浓度 30 % LEL", "gas 30 % LEL")."""
    zh, en, unit = KIND_WORDS[kind]
    if not unit:
        return zh, en
    sep = "" if unit in ("°C", "°") else " "
    return f"{zh} {_num(value)}{sep}{unit}", f"{en} {_num(value)}{sep}{unit}"


def explain(
    risk: Risk,
    level: Level,
    evidence: dict[str, JsonValue],
    rules: ZoneRules,
    *,
    predicted: bool = False,
) -> Explanation:
    """The rule ``level`` of ``risk`` crossed, as its evidence shows it, in words."""
    if risk == Risk.CROWDING:
        return _crowding(level, evidence, rules, predicted)
    if risk == Risk.FIRE:
        return _fire(level, evidence, rules)
    if risk == Risk.FIRE_LANE:
        return _fire_lane(level, evidence, rules)
    if risk == Risk.SENSOR_OFFLINE:
        return _offline(level, evidence, rules)
    if risk == Risk.REPORT:
        return _report(level, evidence, rules)
    return _threshold(level, evidence)


def _crowding(
    level: Level, evidence: dict[str, JsonValue], rules: ZoneRules, predicted: bool
) -> Explanation:
    people, density = _float(evidence.get("people")), _float(evidence.get("density"))
    occupancy, capacity = _float(evidence.get("occupancy")), _float(evidence.get("capacity"))
    area = _float(evidence.get("area_m2"))
    figures = []
    if people is not None:
        figures.append(Figure("人数", "People", f"{people:.0f} 人"))
    if density is not None:
        figures.append(Figure("人群密度", "Density", f"{_num(density, 2)} 人/㎡"))
    if occupancy is not None:
        cap = f"（容量 {capacity:.0f} 人）" if capacity is not None else ""
        figures.append(Figure("承载率", "Occupancy", f"{_pct(occupancy)}{cap}"))
    if area is not None:
        figures.append(Figure("可通行面积", "Walkable area", f"{area:.0f} ㎡"))
    forecast = evidence.get("forecast")
    if predicted and isinstance(forecast, dict):
        rate = _float(forecast.get("rate_per_min")) or 0.0
        target = _float(forecast.get("target_density")) or 0.0
        window = _float(forecast.get("window_minutes")) or 0.0
        expected = forecast.get("expected_at")
        clock = None
        if isinstance(expected, str):
            clock = beijing_clock(datetime.fromisoformat(expected))
        target_zh, target_en = LEVEL_WORDS[Level(str(forecast.get("target_level", "orange")))]
        when_zh = f"约 {clock} 达到{target_zh}色" if clock else f"将达到{target_zh}色"
        when_en = f"reaches {target_en} at about {clock}" if clock else f"reaches {target_en}"
        figures.append(Figure("密度趋势", "Density trend", f"每分钟 +{_num(rate, 2)} 人/㎡"))
        return Explanation(
            zh=f"预判：近 {_num(window)} 分钟人群密度每分钟 +{_num(rate, 2)} 人/㎡，"
            f"{when_zh}（{_num(target, 2)} 人/㎡）{_arrow(level)[0]}",
            en=f"Forecast: density rising {_num(rate, 2)} persons/m² a minute over "
            f"{_num(window)} min, {when_en} ({_num(target, 2)} persons/m²) {_arrow(level)[1]}",
            figures=figures,
            expected_at=expected if isinstance(expected, str) else None,
            expected_clock=clock,
        )
    by_occupancy = rules.occupancy_levels().get(level)
    if occupancy is not None and by_occupancy is not None and occupancy >= by_occupancy:
        zh = f"承载率 {_pct(occupancy)} ≥ {_pct(by_occupancy)} {_arrow(level)[0]}"
        en = f"occupancy {_pct(occupancy)} ≥ {_pct(by_occupancy)} {_arrow(level)[1]}"
    else:
        bar = rules.density_levels().get(level)
        shown = _num(density or 0.0, 2)
        if bar is None:
            zh = f"人群密度 {shown} 人/㎡ {_arrow(level)[0]}"
            en = f"density {shown} persons/m² {_arrow(level)[1]}"
        else:
            zh = f"人群密度 {shown} 人/㎡ ≥ {_num(bar, 2)} 人/㎡ {_arrow(level)[0]}"
            en = f"density {shown} persons/m² ≥ {_num(bar, 2)} persons/m² {_arrow(level)[1]}"
    return Explanation(zh=zh, en=en, figures=figures)


def _fire(level: Level, evidence: dict[str, JsonValue], rules: ZoneRules) -> Explanation:
    detectors = evidence.get("detectors_in_alarm")
    n = len(detectors) if isinstance(detectors, list) else 0
    window = _minutes(rules.fire.pair_window_seconds)
    reports = evidence.get("reports")
    k = len(reports) if isinstance(reports, list) else 0
    figures = [Figure("报警烟感", "Detectors in alarm", f"{n} 个")]
    if k:
        figures.append(Figure("志愿者报告", "Volunteer reports", f"{k} 份"))
    if level == Level.RED and n >= 2:
        zh = f"{_count_zh(n)}个烟感 {window} 分钟内报警 {_arrow(level)[0]}"
        en = f"{n} smoke detectors in alarm within {window} min {_arrow(level)[1]}"
    elif level == Level.RED:
        zh = f"烟感报警且志愿者 {window} 分钟内报告火情 {_arrow(level)[0]}"
        en = (
            f"a smoke detector and a volunteer's fire report within {window} min {_arrow(level)[1]}"
        )
    else:
        zh = f"{_count_zh(max(n, 1))}个烟感报警，待核实 {_arrow(level)[0]}"
        en = f"{max(n, 1)} smoke detector in alarm, to verify {_arrow(level)[1]}"
    return Explanation(zh=zh, en=en, figures=figures)


def _threshold(level: Level, evidence: dict[str, JsonValue]) -> Explanation:
    kind_name = evidence.get("kind")
    value, threshold = _float(evidence.get("value")), _float(evidence.get("threshold"))
    try:
        kind = SensorKind(str(kind_name))
    except ValueError:
        return Explanation(
            zh=f"超过阈值 {_arrow(level)[0]}", en=f"over threshold {_arrow(level)[1]}"
        )
    zh_name, en_name, unit = KIND_WORDS[kind]
    if value is None or threshold is None:
        return Explanation(zh=f"{zh_name} {_arrow(level)[0]}", en=f"{en_name} {_arrow(level)[1]}")
    if not unit:  # a yes/no sensor
        return Explanation(
            zh=f"{zh_name} {_arrow(level)[0]}",
            en=f"{en_name} {_arrow(level)[1]}",
            figures=[Figure(zh_name, en_name.capitalize(), "是 / yes" if value else "否 / no")],
        )
    sep = "" if unit in ("°C", "°") else " "
    shown, bar = f"{_num(value)}{sep}{unit}", f"{_num(threshold)}{sep}{unit}"
    return Explanation(
        zh=f"{zh_name} {shown} ≥ {bar} {_arrow(level)[0]}",
        en=f"{en_name} {shown} ≥ {bar} {_arrow(level)[1]}",
        figures=[Figure(zh_name, en_name.capitalize(), shown)],
    )


def _fire_lane(level: Level, evidence: dict[str, JsonValue], rules: ZoneRules) -> Explanation:
    blocked = evidence.get("blocked")
    n = len(blocked) if isinstance(blocked, list) else 0
    rule = rules.durations.get(SensorKind.FIRE_LANE_BLOCKED)
    after = _minutes(rule.after_seconds) if rule is not None else "?"
    return Explanation(
        zh=f"消防通道持续被占用超过 {after} 分钟 {_arrow(level)[0]}",
        en=f"fire lane blocked for more than {after} min {_arrow(level)[1]}",
        figures=[Figure("占用的通道摄像头", "Cameras seeing it blocked", f"{n} 个")],
    )


def _offline(level: Level, evidence: dict[str, JsonValue], rules: ZoneRules) -> Explanation:
    sensors = evidence.get("sensors")
    n = len(sensors) if isinstance(sensors, list) else 0
    factor = _num(rules.no_signal.factor)
    return Explanation(
        zh=f"{_count_zh(n)}个设备超过其通常上报间隔的 {factor} 倍未上报 {_arrow(level)[0]}",
        en=f"{n} sensor(s) silent for over {factor}× their usual interval {_arrow(level)[1]}",
        figures=[Figure("无信号设备", "Silent sensors", f"{n} 个")],
    )


def _report(level: Level, evidence: dict[str, JsonValue], rules: ZoneRules) -> Explanation:
    reporters = evidence.get("reporters")
    n = len(reporters) if isinstance(reporters, list) else 1
    reports = evidence.get("reports")
    k = len(reports) if isinstance(reports, list) else 1
    try:
        category = ReportCategory(str(evidence.get("category")))
        cat_zh, cat_en = CATEGORY_WORDS[category]
        base = Level(rules.reports.levels[category])
    except ValueError:
        cat_zh, cat_en, base = "其他", "other", level
    escalate = rules.reports.escalate_reporters
    window = _minutes(rules.reports.merge_window_seconds)
    if level.rank > base.rank:
        zh = (
            f"{n} 位志愿者 {window} 分钟内报告「{cat_zh}」"
            f"（≥ {escalate} 人升一级）{_arrow(level)[0]}"
        )
        en = (
            f"{n} volunteers reported {cat_en} within {window} min "
            f"(≥ {escalate} raise it one level) {_arrow(level)[1]}"
        )
    else:
        zh = f"志愿者报告「{cat_zh}」{_arrow(level)[0]}"
        en = f"a volunteer reported {cat_en} {_arrow(level)[1]}"
    figures = [
        Figure("报告", "Reports", f"{k} 份"),
        Figure("报告人", "Reporters", f"{n} 位"),
    ]
    return Explanation(zh=zh, en=en, figures=figures)
