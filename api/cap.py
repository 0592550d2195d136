"""One alert revision as an OASIS CAP 1.2 message, identified the GB/T 35965.1-2018 way.

Pure: no I/O, no clock. Every time is the alert record's own (``at`` of the revision), so the
same revision always gives the same message, and a later revision can name the earlier ones in
``<references>``.

Identifier (GB/T 35965.1 A.1.1): ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N``, 31 characters.

- ``ZZZZZZDDDUUUXX`` is the issuing unit's code (``PUHUI_CAP_SENDER_CODE``): ZZZZZZ the GB/T 2260
  administrative code, 310101 for 黄浦区; DDD the GB/T 4657 institution code (``000`` until the
  street office is assigned one); UUU the unit's internal sub-code (``000``, the standard's
  default); XX the extension (``00``, the standard's default).
- ``YYYYMMDDhhmmss`` is the revision's time in Beijing time (UTC+8).
- ``N`` (0-9) numbers the messages of one second: the revision's place among all alert changes
  stored for that second, in the order they were stored. In the rare second with more than ten,
  the eleventh and later carry the following second (rank // 10 is added to the time).

Mapping from an alert to CAP:

- ``msgType``: revision 1 → ``Alert``; a resolved revision → ``Cancel``; any other → ``Update``.
  Update and Cancel list every earlier revision in ``references``. ``status`` is ``Actual``,
  ``scope`` ``Public``; ``incidents`` is the alert id (one episode).
- ``severity`` from the colour: 红 Extreme, 橙 Severe, 黄 Moderate, 蓝 Minor (一级 … 四级).
- ``urgency``: resolved → Past; predicted → Expected; observed 红/橙 → Immediate; observed 黄/蓝
  → Expected.
- ``certainty``: resolved → Observed; predicted → Likely; a fire at 橙 (one smoke detector,
  "to verify") → Likely; otherwise Observed.
- ``category``: crowding Safety, fire Fire, gas Safety, electrical Fire, flooding Met, manhole
  Infra, fire_lane Fire, ebike Fire, sensor_offline Infra, report Other.
- ``responseType``: resolved → AllClear; crowding → Avoid; fire-type risks at 红 → Evacuate;
  otherwise Monitor.
- Two ``<info>`` blocks, ``zh-CN`` then ``en-US``: headline = the summary, description = the
  summary and the evidence; ``<area>`` with ``areaDesc`` = the zone's name, a ``<circle>`` when
  the zone has a location (radius = that of a disc of the zone's walkable area, at least 10 m;
  the bundled locations are approximate), and the GB/T 2260 code as ``<geocode>``.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alerts.privacy import public_evidence
from models.contracts import AlertRecord, AlertStatus, Level, Risk
from models.timezone import BEIJING
from models.zones import Zone

__all__ = [
    "BEIJING",
    "CAP_NS",
    "CapRef",
    "build_cap",
    "cap_identifier",
    "cap_ref",
    "cap_time",
]

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"

SEVERITY: Final = {
    Level.RED: "Extreme",
    Level.ORANGE: "Severe",
    Level.YELLOW: "Moderate",
    Level.BLUE: "Minor",
}

CATEGORY: Final = {
    Risk.CROWDING: "Safety",
    Risk.FIRE: "Fire",
    Risk.GAS: "Safety",
    Risk.ELECTRICAL: "Fire",
    Risk.FLOODING: "Met",
    Risk.MANHOLE: "Infra",
    Risk.FIRE_LANE: "Fire",
    Risk.EBIKE: "Fire",
    Risk.SENSOR_OFFLINE: "Infra",
    Risk.REPORT: "Other",
}

EVENT: Final = {
    Risk.CROWDING: ("人群聚集", "Crowding"),
    Risk.FIRE: ("火情", "Fire"),
    Risk.GAS: ("燃气泄漏", "Gas leak"),
    Risk.ELECTRICAL: ("电气火灾隐患", "Electrical fire hazard"),
    Risk.FLOODING: ("积水", "Flooding"),
    Risk.MANHOLE: ("井盖异常", "Manhole cover displaced"),
    Risk.FIRE_LANE: ("消防通道堵塞", "Fire lane blocked"),
    Risk.EBIKE: ("电动车进电梯", "E-bike in a lift"),
    Risk.SENSOR_OFFLINE: ("传感器离线", "Sensor offline"),
    Risk.REPORT: ("群众报告", "Volunteer report"),
}

_GRADE: Final = {
    Level.RED: ("红色预警（一级）", "red (level I)"),
    Level.ORANGE: ("橙色预警（二级）", "orange (level II)"),
    Level.YELLOW: ("黄色预警（三级）", "yellow (level III)"),
    Level.BLUE: ("蓝色预警（四级）", "blue (level IV)"),
}

_INSTRUCTION: Final = {
    Risk.CROWDING: (
        "请勿前往该区域，已在区域内的人员请听从现场工作人员指引有序疏散。",
        "Avoid the area; if you are in it, follow the staff's directions and move out calmly.",
    ),
    Risk.FIRE: (
        "远离现场，勿乘电梯，拨打 119。",
        "Keep away, do not use lifts, call 119.",
    ),
}

_FIRE_LIKE: Final = frozenset({Risk.FIRE, Risk.GAS, Risk.ELECTRICAL, Risk.EBIKE})


@dataclass(frozen=True, slots=True)
class CapRef:
    """An earlier message, as ``<references>`` names it."""

    identifier: str
    sent: str


def beijing(moment: datetime) -> datetime:
    """``moment`` in Beijing time (aware input only)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(BEIJING)


def cap_time(moment: datetime) -> str:
    """A CAP date-time: Beijing time, whole seconds, explicit ``+08:00``."""
    return beijing(moment).replace(microsecond=0).isoformat()


def cap_identifier(sender_code: str, moment: datetime, rank: int) -> str:
    """The GB/T 35965.1 identifier of the ``rank``-th message stored in ``moment``'s second."""
    if len(sender_code) != 14 or not sender_code.isdigit():
        raise ValueError("the sender code must be 14 digits (ZZZZZZDDDUUUXX)")
    if rank < 0:
        raise ValueError("rank must be >= 0")
    shifted = beijing(moment).replace(microsecond=0) + timedelta(seconds=rank // 10)
    return f"{sender_code}_{shifted:%Y%m%d%H%M%S}_{rank % 10}"


def cap_ref(sender_code: str, record: AlertRecord, rank: int) -> CapRef:
    """Identifier and ``sent`` of the message for ``record``."""
    return CapRef(cap_identifier(sender_code, record.at, rank), cap_time(record.at))


def msg_type(record: AlertRecord) -> str:
    """Alert for the first revision, Cancel once resolved, Update otherwise."""
    if record.status == AlertStatus.RESOLVED:
        return "Cancel"
    return "Alert" if record.revision == 1 else "Update"


def urgency(record: AlertRecord) -> str:
    """See the module docstring."""
    if record.status == AlertStatus.RESOLVED:
        return "Past"
    if record.predicted:
        return "Expected"
    return "Immediate" if record.level.rank >= Level.ORANGE.rank else "Expected"


def certainty(record: AlertRecord) -> str:
    """See the module docstring."""
    if record.status == AlertStatus.RESOLVED:
        return "Observed"
    if record.predicted:
        return "Likely"
    if record.risk == Risk.FIRE and record.level == Level.ORANGE:
        return "Likely"  # one detector: to verify
    return "Observed"


def response_type(record: AlertRecord) -> str:
    """See the module docstring."""
    if record.status == AlertStatus.RESOLVED:
        return "AllClear"
    if record.risk == Risk.CROWDING:
        return "Avoid"
    if record.risk in _FIRE_LIKE and record.level == Level.RED:
        return "Evacuate"
    return "Monitor"


def circle(zone: Zone) -> str | None:
    """``"lat,lon radius_km"`` around the zone's location, or ``None`` without one."""
    if zone.location is None:
        return None
    radius_km = max(0.01, math.sqrt(zone.area_m2 / math.pi) / 1000.0)
    return f"{zone.location.lat:.6f},{zone.location.lon:.6f} {radius_km:.3f}"


def _evidence_lines(record: AlertRecord) -> list[str]:
    lines = []
    evidence = public_evidence(record.evidence)  # scope Public: counts, not volunteers
    for key in sorted(evidence):
        value = evidence[key]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    return lines


# Characters XML 1.0 cannot carry at all (a volunteer's text may hold them): replaced.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = _NOT_XML.sub("\ufffd", text)
    return element


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    element = _sub(parent, tag)
    _sub(element, "valueName", name)
    _sub(element, "value", value)


def build_cap(
    record: AlertRecord,
    *,
    zone: Zone | None,
    sender: str,
    sender_name: str,
    sender_code: str,
    identifier: str,
    references: Sequence[CapRef] = (),
) -> bytes:
    """The CAP 1.2 XML (UTF-8, with declaration) for one alert revision.

    ``identifier`` is this message's (see :func:`cap_identifier`); ``references`` are the
    messages of the alert's earlier revisions, oldest first.
    """
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(record.at))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type(record))
    _sub(root, "scope", "Public")
    if references and msg_type(record) != "Alert":
        _sub(root, "references", " ".join(f"{sender},{r.identifier},{r.sent}" for r in references))
    _sub(root, "incidents", record.alert_id)

    event_zh, event_en = EVENT.get(record.risk, (record.risk.value, record.risk.value))
    grade_zh, grade_en = _GRADE[record.level]
    instruction = _INSTRUCTION.get(record.risk)
    names = (zone.name.zh, zone.name.en) if zone is not None else (record.zone_id, record.zone_id)
    blocks = [
        ("zh-CN", event_zh, record.summary.zh, grade_zh, "预警级别", names[0], 0),
        ("en-US", event_en, record.summary.en, grade_en, "level", names[1], 1),
    ]
    for language, event, summary, grade, grade_name, area_name, index in blocks:
        info = _sub(root, "info")
        _sub(info, "language", language)
        _sub(info, "category", CATEGORY.get(record.risk, "Other"))
        _sub(info, "event", event)
        _sub(info, "responseType", response_type(record))
        _sub(info, "urgency", urgency(record))
        _sub(info, "severity", SEVERITY[record.level])
        _sub(info, "certainty", certainty(record))
        _pair(info, "eventCode", "puhui:risk", record.risk.value)
        _sub(info, "effective", cap_time(record.at))
        _sub(info, "onset", cap_time(record.opened_at))
        _sub(info, "senderName", sender_name)
        _sub(info, "headline", summary)
        _sub(info, "description", "\n".join([summary, *_evidence_lines(record)]))
        if instruction is not None and record.status != AlertStatus.RESOLVED:
            _sub(info, "instruction", instruction[index])
        _pair(info, "parameter", grade_name, grade)
        _pair(info, "parameter", "puhui:level", record.level.value)
        _pair(info, "parameter", "puhui:alert_id", record.alert_id)
        _pair(info, "parameter", "puhui:revision", str(record.revision))
        area = _sub(info, "area")
        _sub(area, "areaDesc", area_name)
        shape = circle(zone) if zone is not None else None
        if shape is not None:
            _sub(area, "circle", shape)
        _pair(area, "geocode", "GB/T 2260", sender_code[:6])
    ET.indent(root)
    body: bytes = ET.tostring(
        root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS
    )
    return body
