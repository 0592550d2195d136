"""Decoders of the wire contract: every bad record is rejected with a reason, never an exception
of another kind; every good record round-trips."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.contracts import (
    KIND_RANGES,
    MAX_RECORD_BYTES,
    REASONS,
    AlertRecord,
    RejectedRecord,
    SensorKind,
    SensorReading,
    decode_alert,
    decode_reading,
    decode_report,
)

pytestmark = pytest.mark.unit

ZONES = frozenset({"lane-1", "plaza"})
GOOD = {
    "reading_id": "r-1",
    "sensor_id": "cam-1",
    "zone_id": "lane-1",
    "kind": "people_count",
    "value": 120,
    "observed_at": "2026-10-01T19:00:00+08:00",
}


def raw(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def reason(data: bytes) -> str:
    with pytest.raises(RejectedRecord) as err:
        decode_reading(data, ZONES)
    assert err.value.reason in REASONS
    return err.value.reason


def test_good_reading_decodes() -> None:
    r = decode_reading(raw(), ZONES)
    assert r.value == 120 and r.observed_at == datetime(2026, 10, 1, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (raw(value=...), "missing_field"),
        (raw(colour="red"), "unknown_field"),
        (raw(kind="radiation"), "unknown_kind"),
        (raw(zone_id="atlantis"), "unknown_zone"),
        (raw(observed_at="2026-10-01T19:00:00"), "naive_time"),
        (raw(observed_at="yesterday"), "invalid_field"),
        (raw(value=-1), "impossible_value"),
        (raw(value=2.5), "impossible_value"),
        (raw(kind="smoke", value=3), "impossible_value"),
        (raw(value="12"), "invalid_field"),
        (raw(value=True), "invalid_field"),
        (raw(reading_id=""), "invalid_field"),
        (raw(description="x" * MAX_RECORD_BYTES), "too_large"),
        (b'{"value": NaN}', "missing_field"),
    ],
)
def test_each_bad_record_has_its_reason(data: bytes, expected: str) -> None:
    assert reason(data) == expected


def test_nan_and_infinity_are_impossible() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        data = raw(value=0).replace(b'"value": 0', b'"value": ' + literal)
        assert reason(data) == "impossible_value"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_a_rejection(data: bytes) -> None:
    try:
        decode_reading(data, ZONES)
    except RejectedRecord as rejected:
        assert rejected.reason in REASONS and rejected.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from([*GOOD, "extra"]), json_values, max_size=8))
def test_arbitrary_json_objects_are_rejected_or_valid(body: dict[str, object]) -> None:
    try:
        reading = decode_reading(json.dumps(body).encode(), ZONES)
    except RejectedRecord as rejected:
        assert rejected.reason in REASONS
    else:
        assert reading.zone_id in ZONES and math.isfinite(reading.value)


@given(
    kind=st.sampled_from(list(SensorKind)),
    offset=st.integers(-12 * 60, 14 * 60),
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    data=st.data(),
)
def test_valid_readings_round_trip(
    kind: SensorKind, offset: int, when: datetime, data: st.DataObject
) -> None:
    low, high, whole = KIND_RANGES[kind]
    value = data.draw(
        st.integers(int(low), int(high)) if whole else st.floats(low, high, allow_nan=False)
    )
    moment = when.replace(tzinfo=timezone(timedelta(minutes=offset)))
    reading = SensorReading(
        reading_id="r", sensor_id="s", zone_id="plaza", kind=kind, value=value, observed_at=moment
    )
    again = decode_reading(reading.model_dump_json().encode(), ZONES)
    assert again == reading and again.observed_at == moment


def test_report_decoder() -> None:
    body = {
        "report_id": "p1",
        "reporter_id": "v1",
        "zone_id": "plaza",
        "category": "injury",
        "description": "有人摔倒",
        "submitted_at": "2026-10-01T19:00:00+08:00",
        "lat": 31.2,
        "lon": 121.47,
    }
    assert decode_report(json.dumps(body).encode(), ZONES).description == "有人摔倒"
    for bad, why in [
        ({"category": "ufo"}, "unknown_category"),
        ({"lat": 91}, "invalid_field"),
        ({"photo_url": "javascript:alert(1)"}, "invalid_field"),
        ({"zone_id": "nowhere"}, "unknown_zone"),
    ]:
        with pytest.raises(RejectedRecord) as err:
            decode_report(json.dumps({**body, **bad}).encode(), ZONES)
        assert err.value.reason == why


def test_alert_record_round_trips() -> None:
    rec = AlertRecord.model_validate(
        {
            "alert_id": "a",
            "revision": 1,
            "zone_id": "plaza",
            "risk": "fire",
            "level": "orange",
            "status": "firing",
            "change": "raised",
            "at": "2026-10-01T11:00:00Z",
            "opened_at": "2026-10-01T11:00:00Z",
            "summary": {"zh": "烟感", "en": "smoke"},
        }
    )
    assert decode_alert(rec.to_bytes()) == rec


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (1714543200, "invalid_field"),
        ("1714543200", "invalid_field"),
        ("2026-10-01", "naive_time"),
        ("2026-10-01 19:00:00", "naive_time"),
        ("2026-10-01T19:00+08:00", "invalid_field"),
        ("2026-10-01 19:00:00+08:00", "invalid_field"),
    ],
)
def test_only_rfc3339_with_offset_is_a_time(stamp: object, expected: str) -> None:
    assert reason(raw(observed_at=stamp)) == expected


def test_blank_ids_are_invalid() -> None:
    assert reason(raw(sensor_id="   ")) == "invalid_field"
