"""Hypothesis-generated garbage on the readings topic: all of it is dead-lettered, and the
pipeline still alerts on the good readings between it.

A few hundred bad records — arbitrary bytes, null values, JSON of the wrong shape, and valid
readings broken in exactly one way (NaN and infinite values, huge or impossible values, wrong
types, unknown zones and kinds, naive or malformed times, missing and extra fields, oversized
records) — are generated with a fixed seed, interleaved with good smoke readings, and produced
with kafka-python under random keys. Each bad record must come out on the dead-letter topic once,
with its key and bytes unchanged and a reason header (the expected one where the breakage
determines it); each good reading must raise its alert.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from alerts.zone.alert import alert_id_for
from models.contracts import KIND_RANGES, MAX_RECORD_BYTES, REASONS, Risk, SensorKind
from tests.support.fault import (
    T0,
    TopicTap,
    db_rows,
    metric,
    produce_all,
    reading,
    wait_until,
    write_zones,
    zone_ids,
)
from tests.support.parts import Worker

pytestmark = pytest.mark.fault

GOOD_ZONES = zone_ids("gz", 24)
GARBAGE_EXAMPLES = 300
FIELDS = ("reading_id", "sensor_id", "zone_id", "kind", "value", "observed_at")
KINDS = [k.value for k in SensorKind]

#: A bad record: (key, value, the reason it must be rejected for, or None when any will do).
Bad = tuple[bytes | None, bytes | None, str | None]


def _base(i: int) -> dict[str, Any]:
    """A valid reading that raises nothing (5 % LEL is below every gas level)."""
    return {
        "reading_id": f"bad-{i}",
        "sensor_id": "gas-9",
        "zone_id": GOOD_ZONES[i % len(GOOD_ZONES)],
        "kind": "gas_lel",
        "value": 5.0,
        "observed_at": (T0 + timedelta(seconds=i)).isoformat(),
    }


def _dumps(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def _out_of_range(draw: Any) -> tuple[str, Any]:
    kind = draw(st.sampled_from(list(KIND_RANGES)))
    low, high, whole = KIND_RANGES[kind]
    choices = [
        st.floats(min_value=high, exclude_min=True, allow_infinity=False, allow_nan=False),
        st.floats(max_value=low, exclude_max=True, allow_infinity=False, allow_nan=False),
        st.sampled_from([math.nan, math.inf, -math.inf]),
    ]
    if whole:  # a fraction where only whole numbers make sense (a smoke value of 0.5)
        choices.append(st.floats(min_value=low, max_value=high).filter(lambda v: v != int(v)))
    return kind.value, draw(st.one_of(choices))


@st.composite
def broken_reading(draw: Any) -> tuple[bytes, str | None]:
    """A valid reading broken in exactly one way, and the reason that breakage must give."""
    body = _base(draw(st.integers(0, 10_000)))
    how = draw(
        st.sampled_from(
            [
                "value",
                "value_type",
                "zone",
                "kind",
                "naive_time",
                "bad_time",
                "missing",
                "extra",
                "bad_id",
                "too_large",
            ]
        )
    )
    reason: str | None
    if how == "value":
        body["kind"], body["value"] = _out_of_range(draw)
        reason = "impossible_value"
    elif how == "value_type":
        body["value"] = draw(
            st.one_of(
                st.text(max_size=10), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)
            )
        )
        reason = "invalid_field"
    elif how == "zone":
        # printable text (a control or bidi character would be invalid_field, not unknown_zone)
        body["zone_id"] = draw(
            st.text(
                st.characters(blacklist_categories=("Cc", "Cf", "Cs")), min_size=1, max_size=40
            ).filter(lambda z: z.strip() and z not in GOOD_ZONES)
        )
        reason = "unknown_zone"
    elif how == "kind":
        body["kind"] = draw(st.text(max_size=20).filter(lambda k: k not in KINDS))
        reason = "unknown_kind"
    elif how == "naive_time":
        body["observed_at"] = draw(st.datetimes()).isoformat()
        reason = "naive_time"
    elif how == "bad_time":
        body["observed_at"] = draw(
            st.one_of(
                st.integers(),
                st.floats(allow_nan=False),
                st.sampled_from(["yesterday", "2026-13-01T00:00:00+08:00", "19:00+08:00", ""]),
            )
        )
        reason = "invalid_field"
    elif how == "missing":
        del body[draw(st.sampled_from(FIELDS))]
        reason = "missing_field"
    elif how == "extra":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in FIELDS))
        body[name] = draw(st.one_of(st.integers(), st.text(max_size=5)))
        reason = "unknown_field"
    elif how == "bad_id":
        field = draw(st.sampled_from(["reading_id", "sensor_id"]))
        body[field] = draw(st.sampled_from(["", "   ", "x" * 129, 42, None]))
        reason = "invalid_field"
    else:
        body["reading_id"] = "x" * (MAX_RECORD_BYTES + draw(st.integers(1, 2000)))
        reason = "too_large"
    return _dumps(body), reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
).filter(lambda j: not (isinstance(j, dict) and set(FIELDS) <= set(j)))

garbage_value = st.one_of(
    broken_reading().map(lambda b: (b[0], b[1])),
    broken_reading().map(lambda b: (b[0], b[1])),  # twice as likely: the interesting ones
    st.binary(max_size=300).map(lambda b: (b, None)),
    _json.map(lambda j: (_dumps(j), None)),
    st.just((None, None)),  # a null value (tombstone)
)
garbage_key = st.one_of(
    st.none(), st.binary(max_size=16), st.sampled_from(GOOD_ZONES).map(str.encode)
)


def generate_garbage() -> list[Bad]:
    """``GARBAGE_EXAMPLES`` bad records, the same ones on every run (derandomized)."""
    out: list[Bad] = []

    @settings(
        max_examples=GARBAGE_EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(key=garbage_key, value=garbage_value)
    def collect(key: bytes | None, value: tuple[bytes | None, str | None]) -> None:
        if key is None and value[0] is None:
            key = b"tombstone"  # a record needs a key or a value
        out.append((key, value[0], value[1]))

    collect()
    return out


def test_garbage_is_dead_lettered_and_good_readings_still_alert(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    garbage = generate_garbage()
    assert len(garbage) >= GARBAGE_EXAMPLES * 0.9
    zones_file = write_zones(tmp_path / "zones.yaml", GOOD_ZONES)
    worker = make_worker(PUHUI_ZONES_FILE=str(zones_file))

    good = [
        reading(f"{z}-smoke", z, "smoke", 1, T0 + timedelta(minutes=1), sensor="smk-1")
        for z in GOOD_ZONES
    ]
    expected_alerts = {alert_id_for(z, Risk.FIRE, f"{z}-smoke"): z for z in GOOD_ZONES}
    records: list[tuple[bytes | None, bytes | None]] = []
    is_bad: list[Bad | None] = []
    step = len(garbage) / len(good)
    good_at = {int(step * (j + 0.5)): g for j, g in enumerate(good)}  # spread evenly
    for i, bad in enumerate(garbage):
        if i in good_at:
            records.append(good_at[i])
            is_bad.append(None)
        records.append((bad[0], bad[1]))
        is_bad.append(bad)
    assert sum(b is None for b in is_bad) == len(good)

    with (
        TopicTap(kafka_bootstrap, worker.topics.dead_letters) as dead_tap,
        TopicTap(kafka_bootstrap, worker.topics.alerts) as alert_tap,
    ):
        metadata = produce_all(kafka_bootstrap, worker.topics.readings, records)
        wait_until(lambda: dead_tap.count() >= len(garbage), 90, "every bad record dead-lettered")
        wait_until(
            lambda: {r["zone_id"] for r in alert_tap.values()} == set(GOOD_ZONES),
            60,
            "an alert in every good zone",
        )
        time.sleep(2.0)  # a record dead-lettered twice would show up now
        dead = dead_tap.items()
        alerts = alert_tap.values()

    reasons = Counter(d.headers.get("error.reason", b"").decode() for d in dead)
    print(f"\n{len(garbage)} bad records among {len(good)} good ones; reasons: {dict(reasons)}")
    assert len(dead) == len(garbage)

    # Each dead letter points back at one bad record (source partition + offset), with its key
    # and bytes unchanged and the reason its breakage calls for.
    produced = {(m.partition, m.offset): bad for m, bad in zip(metadata, is_bad, strict=True)}
    seen: set[tuple[int, int]] = set()
    for d in dead:
        assert d.headers["source.topic"] == worker.topics.readings.encode()
        where = (int(d.headers["source.partition"]), int(d.headers["source.offset"]))
        assert where not in seen, f"dead-lettered twice: {where}"
        seen.add(where)
        bad = produced[where]
        assert bad is not None, f"a good reading was dead-lettered: {d.value!r}"
        key, value, reason = bad
        assert d.key == key
        assert d.value == value or (value is None and d.value in (None, b"")), (d.value, value)
        got = d.headers["error.reason"].decode()
        assert got in REASONS, got
        if reason is not None:
            assert got == reason, (reason, got, d.headers["error.detail"], value)
        assert d.headers["error.detail"]
    assert metric(worker.metrics_url, "puhui_readings_rejected_total") == len(garbage)
    assert metric(worker.metrics_url, "puhui_readings_processed_total") == len(good)

    # The good readings raised their alerts, and nothing else did.
    assert {r["alert_id"]: r["zone_id"] for r in alerts} == expected_alerts
    wait_until(
        lambda: len(db_rows(worker.database_url, "select alert_id from alerts")) == len(good),
        30,
        "the good alerts in the database",
    )
    stored = db_rows(worker.database_url, "select alert_id, zone_id from alerts")
    assert dict(stored) == expected_alerts
