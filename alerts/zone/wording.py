"""The zh/en words of alerts: each risk's and report category's name, and the one-line summary
an alert record carries (Chinese first: it is what the street's operators read)."""

from __future__ import annotations

from models.contracts import Level, ReportCategory, Risk, Summary
from models.zones import Zone

RISK_ZH: dict[Risk, str] = {
    Risk.CROWDING: "人群聚集",
    Risk.FIRE: "火情",
    Risk.GAS: "燃气泄漏",
    Risk.ELECTRICAL: "电气火灾隐患",
    Risk.FLOODING: "积水",
    Risk.MANHOLE: "井盖异常",
    Risk.FIRE_LANE: "消防通道占用",
    Risk.EBIKE: "电动自行车进电梯",
    Risk.SENSOR_OFFLINE: "设备离线",
    Risk.REPORT: "志愿者报告",
}
RISK_EN: dict[Risk, str] = {
    Risk.CROWDING: "Crowding",
    Risk.FIRE: "Fire",
    Risk.GAS: "Gas leak",
    Risk.ELECTRICAL: "Electrical fire risk",
    Risk.FLOODING: "Standing water",
    Risk.MANHOLE: "Manhole cover",
    Risk.FIRE_LANE: "Fire lane blocked",
    Risk.EBIKE: "E-bike in a lift",
    Risk.SENSOR_OFFLINE: "Sensor offline",
    Risk.REPORT: "Volunteer report",
}

CATEGORY_ZH: dict[ReportCategory, str] = {
    ReportCategory.INJURY: "有人受伤",
    ReportCategory.FIRE: "火情",
    ReportCategory.SMOKE: "烟雾",
    ReportCategory.CROWDING: "人员拥挤",
    ReportCategory.GAS: "燃气异味",
    ReportCategory.ELECTRICAL: "电气隐患",
    ReportCategory.FLOODING: "积水",
    ReportCategory.MANHOLE: "井盖问题",
    ReportCategory.FIRE_LANE: "消防通道被占",
    ReportCategory.EBIKE: "电动车进电梯",
    ReportCategory.LITTERING: "乱扔垃圾",
    ReportCategory.OTHER: "其他",
}


def summary_for(zone: Zone, risk: Risk, level: Level, zh: str, en: str) -> Summary:
    return Summary(
        zh=f"{zone.name.zh} {RISK_ZH[risk]}：{zh}（{level.zh}色预警）",
        en=f"{RISK_EN[risk]} at {zone.name.en}: {en} ({level.value})",
    )
