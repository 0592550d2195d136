"""The traffic simulator: determinism, the wire contract, and what each scenario promises.

Crowding is judged the way the engine judges it: a zone's people are the sum of its cameras'
latest counts, density = ``Zone.density(people)``, occupancy = ``Zone.occupancy(people)``, against
the real thresholds of ``alerts.rules``.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.rules import DEFAULT_DENSITY_THRESHOLDS, DEFAULT_OCCUPANCY_THRESHOLDS, RuleSet
from models.contracts import Level, SensorKind, SensorReading, decode_reading
from models.zones import Zone, ZoneRegistry, load_bundled_zones
from streams import simulator
from streams.simulator import (
    BEIJING,
    SCENARIOS,
    SMOKE_INTERVAL,
    SURGE_LENGTH,
    camera_ids,
    encode_reading,
    generate,
    plan,
    profile_for,
    run,
    smoke_detector_ids,
    surge_density,
)

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()
CST = timezone(timedelta(hours=8))
DAY = datetime(2024, 5, 4, 0, 0, tzinfo=CST)  # a Saturday
BLUE_DENSITY = DEFAULT_DENSITY_THRESHOLDS[Level.BLUE]  # 2 persons/m²
ORANGE_DENSITY = DEFAULT_DENSITY_THRESHOLDS[Level.ORANGE]  # 4 persons/m²
RED_DENSITY = DEFAULT_DENSITY_THRESHOLDS[Level.RED]  # 5 persons/m²
# An ordinary day stays under 70 % of capacity, and under the lowest occupancy level in force.
BLUE_OCCUPANCY = min(0.70, *DEFAULT_OCCUPANCY_THRESHOLDS.values())
LANES = [z for z in ZONES if z.site == "tianzifang" and z.area_m2 < 1000]


def people_series(readings: Iterable[SensorReading], zone: Zone) -> list[tuple[datetime, float]]:
    """(time, people) after each camera reading of ``zone``: the sum of its cameras' latest."""
    latest: dict[str, float] = {}
    series: list[tuple[datetime, float]] = []
    for reading in readings:
        if reading.zone_id == zone.id and reading.kind is SensorKind.PEOPLE_COUNT:
            latest[reading.sensor_id] = reading.value
            series.append((reading.observed_at, sum(latest.values())))
    return series


def density_series(readings: list[SensorReading], zone: Zone) -> list[tuple[datetime, float]]:
    return [(t, zone.density(people)) for t, people in people_series(readings, zone)]


def mean_between(series: list[tuple[datetime, float]], lo: datetime, hi: datetime) -> float:
    values = [v for t, v in series if lo <= t < hi]
    assert values, f"no values in [{lo}, {hi})"
    return sum(values) / len(values)


def by_sensor(readings: Iterable[SensorReading]) -> dict[str, list[SensorReading]]:
    grouped: dict[str, list[SensorReading]] = defaultdict(list)
    for reading in readings:
        grouped[reading.sensor_id].append(reading)
    return grouped


def assert_ordinary(readings: list[SensorReading], zones: Iterable[Zone]) -> None:
    """No zone reaches 蓝 by density or by occupancy."""
    for zone in zones:
        for at, people in people_series(readings, zone):
            density = zone.density(people)
            assert density < BLUE_DENSITY, f"{zone.id} at {at}: {density:.2f} persons/m²"
            occupancy = zone.occupancy(people)
            if occupancy is not None:
                assert occupancy < BLUE_OCCUPANCY, f"{zone.id} at {at}: {occupancy:.0%}"


@pytest.fixture(scope="module")
def whole_day() -> list[SensorReading]:
    return generate(ZONES, DAY, timedelta(hours=24), scenario="day")


@pytest.fixture(scope="module")
def surge_evening() -> list[SensorReading]:
    return generate(ZONES, DAY.replace(hour=17), timedelta(hours=4), scenario="surge")


@pytest.fixture(scope="module")
def smoke_window() -> list[SensorReading]:
    return generate(ZONES, DAY.replace(hour=9), timedelta(hours=3), scenario="smoke", seed=11)


# ------------------------------------------------------------------------- basics ----


def test_same_arguments_give_the_same_list() -> None:
    start = DAY.replace(hour=18)
    for scenario in SCENARIOS:
        first = generate(ZONES, start, timedelta(minutes=90), scenario=scenario, seed=3)
        again = generate(ZONES, start, timedelta(minutes=90), scenario=scenario, seed=3)
        assert first == again
        assert [r.reading_id for r in first] == [r.reading_id for r in again]


def test_another_seed_or_start_gives_other_readings() -> None:
    start = DAY.replace(hour=12)
    base = generate(ZONES, start, timedelta(minutes=30), seed=1)
    other_seed = generate(ZONES, start, timedelta(minutes=30), seed=2)
    later = generate(ZONES, start + timedelta(hours=1), timedelta(minutes=30), seed=1)
    assert [r.value for r in base] != [r.value for r in other_seed]
    # A replay with another start must not reuse ids (the engine drops repeated ids).
    assert not {r.reading_id for r in base} & {r.reading_id for r in later}


def test_scenarios_share_the_ordinary_background() -> None:
    """For one seed, what a scenario does not touch reads exactly as on an ordinary day."""
    start, duration = DAY.replace(hour=17), timedelta(hours=4)
    day = generate(ZONES, start, duration, scenario="day")
    for scenario in ("surge", "smoke", "demo"):
        readings = generate(ZONES, start, duration, scenario=scenario)
        scheme = plan(ZONES, start, duration, scenario=scenario)
        touched = {s.zone_id for s in scheme.surges} | {a.zone_id for a in scheme.alarms}
        assert touched

        def untouched(rs: list[SensorReading], touched: set[str] = touched) -> list[Any]:
            return [(r.sensor_id, r.observed_at, r.value) for r in rs if r.zone_id not in touched]

        assert untouched(readings) == untouched(day)
        assert not {r.reading_id for r in readings} & {r.reading_id for r in day}


def test_start_in_another_zone_is_the_same_instant_in_beijing_time() -> None:
    utc_start = datetime(2024, 5, 4, 10, 0, tzinfo=UTC)
    in_utc = generate(ZONES, utc_start, timedelta(minutes=10))
    in_cst = generate(ZONES, utc_start.astimezone(CST), timedelta(minutes=10))
    assert in_utc == in_cst
    assert all(r.observed_at.utcoffset() == timedelta(hours=8) for r in in_utc)


def test_sorted_by_time_with_deterministic_tie_break(whole_day: list[SensorReading]) -> None:
    keys = [(r.observed_at, r.sensor_id) for r in whole_day]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys), "a sensor has two readings at one instant"
    assert len({r.reading_id for r in whole_day}) == len(whole_day)


def test_readings_lie_in_the_window() -> None:
    start = datetime(2024, 5, 4, 8, 0, 0, 750_000, tzinfo=CST)  # floored to the second
    readings = generate(ZONES, start, timedelta(minutes=20))
    assert readings
    assert min(r.observed_at for r in readings) >= start.replace(microsecond=0)
    assert max(r.observed_at for r in readings) < start + timedelta(minutes=20)
    assert all(r.observed_at.microsecond == 0 for r in readings)


def test_every_reading_passes_the_wire_contract() -> None:
    readings = [
        r
        for scenario in SCENARIOS
        for r in generate(ZONES, DAY.replace(hour=18), timedelta(hours=2), scenario=scenario)
    ]
    ids = ZONES.ids()
    for reading in readings:
        raw = encode_reading(reading)
        assert decode_reading(raw, ids) == reading
        assert decode_reading(reading.model_dump_json().encode(), ids) == reading


def test_wire_form_is_compact_json_of_the_contract_fields_in_beijing_time() -> None:
    reading = SensorReading(
        reading_id="r-1",
        sensor_id="tianzifang-taikang-210-cam-1",
        zone_id="tianzifang-taikang-210",
        kind=SensorKind.PEOPLE_COUNT,
        value=123.0,
        observed_at=datetime(2024, 5, 4, 11, 30, 5, tzinfo=UTC),
    )
    raw = encode_reading(reading)
    assert b" " not in raw
    document = json.loads(raw.decode("utf-8"))
    assert set(document) == set(SensorReading.model_fields)
    assert document["observed_at"] == "2024-05-04T19:30:05+08:00"
    assert document["kind"] == "people_count"
    assert decode_reading(raw, ZONES.ids()) == reading


def test_each_zone_has_its_cameras_and_two_smoke_detectors(
    whole_day: list[SensorReading],
) -> None:
    sensors = by_sensor(whole_day)
    for zone in ZONES:
        cams = camera_ids(zone)
        assert 1 <= len(cams) <= 2
        assert cams[0] == f"{zone.id}-cam-1"
        assert smoke_detector_ids(zone) == (f"{zone.id}-smoke-1", f"{zone.id}-smoke-2")
        for sensor in (*cams, *smoke_detector_ids(zone)):
            assert sensors[sensor], sensor
            assert {r.zone_id for r in sensors[sensor]} == {zone.id}
        kinds = {r.kind for s in cams for r in sensors[s]}
        assert kinds == {SensorKind.PEOPLE_COUNT}
    expected = {s for z in ZONES for s in (*camera_ids(z), *smoke_detector_ids(z))}
    assert set(sensors) == expected


@pytest.mark.parametrize(
    "interval", [timedelta(seconds=30), timedelta(seconds=10), timedelta(minutes=1)]
)
def test_interval_spacing_is_respected(interval: timedelta) -> None:
    duration = timedelta(hours=1)
    readings = generate(ZONES, DAY.replace(hour=14), duration, interval=interval)
    per_hour_cam = duration / interval
    for sensor, series in by_sensor(readings).items():
        gaps = {b.observed_at - a.observed_at for a, b in itertools.pairwise(series)}
        if "-cam-" in sensor:
            assert gaps == {interval}, sensor
            assert len(series) == per_hour_cam
            assert series[0].observed_at - DAY.replace(hour=14) < interval
        else:
            assert gaps == {SMOKE_INTERVAL}, sensor
            assert len(series) == duration / SMOKE_INTERVAL
            assert all(r.value == 0 for r in series)


def test_sensors_are_spread_over_the_interval(whole_day: list[SensorReading]) -> None:
    """Phases differ, so the readings are not bunched on the half-minute."""
    seconds = {r.observed_at.second % 30 for r in whole_day if r.kind is SensorKind.PEOPLE_COUNT}
    assert len(seconds) > 10


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="scenario"):
        generate(ZONES, DAY, timedelta(hours=1), scenario="parade")
    with pytest.raises(ValueError, match="aware"):
        generate(ZONES, datetime(2024, 5, 4, 12, 0), timedelta(hours=1))
    with pytest.raises(ValueError, match="negative"):
        generate(ZONES, DAY, timedelta(minutes=-1))
    with pytest.raises(ValueError, match="interval"):
        generate(ZONES, DAY, timedelta(hours=1), interval=timedelta(0))


def test_an_empty_window_gives_nothing() -> None:
    assert generate(ZONES, DAY, timedelta(0)) == []


def test_one_simulated_hour_is_fast() -> None:
    started = time.perf_counter()
    readings = generate(ZONES, DAY.replace(hour=19), timedelta(hours=1), scenario="demo")
    elapsed = time.perf_counter() - started
    assert len(readings) > 3000
    assert elapsed < 1.0, f"generate() took {elapsed:.2f}s for one simulated hour"


def test_scenarios_are_described() -> None:
    assert set(SCENARIOS) == {"day", "surge", "smoke", "demo"}
    assert all(text and "\n" not in text for text in SCENARIOS.values())


# ---------------------------------------------------------------------------- day ----


def test_day_never_reaches_a_crowding_level(whole_day: list[SensorReading]) -> None:
    assert_ordinary(whole_day, ZONES)
    assert all(r.value == 0 for r in whole_day if r.kind is SensorKind.SMOKE)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    start_minute=st.integers(min_value=0, max_value=7 * 24 * 60),
)
def test_day_is_ordinary_for_any_seed_and_start(seed: int, start_minute: int) -> None:
    start = DAY + timedelta(minutes=start_minute)
    readings = generate(ZONES, start, timedelta(hours=2), seed=seed)
    assert_ordinary(readings, ZONES)


def test_day_follows_tianzifangs_daily_curve(whole_day: list[SensorReading]) -> None:
    """Low in the morning, a lunch bump, the evening peak around 19:00–21:00."""
    for lane in LANES:
        assert profile_for(lane) == "scenic"
        series = people_series(whole_day, lane)

        def at(hour: float, series: list[tuple[datetime, float]] = series) -> float:
            moment = DAY + timedelta(hours=hour)
            return mean_between(
                series, moment - timedelta(minutes=15), moment + timedelta(minutes=15)
            )

        assert at(4) < at(9) < at(13)  # morning rise to lunch
        assert at(13) > at(14.5)  # the lunch bump
        assert at(14.5) < at(17) < at(20)
        hourly = {h: at(h + 0.5) for h in range(24)}
        assert max(hourly, key=hourly.__getitem__) in (19, 20)
        assert at(20) > 0.5 * lane.area_m2  # busy, but ordinary
        assert at(23.5) < at(20) / 2


def test_day_has_about_eight_percent_noise(whole_day: list[SensorReading]) -> None:
    """Counts wobble around the curve by up to ±8 % (judged against a 10-minute moving mean)."""
    for lane in LANES:
        series = [
            (t, v) for t, v in people_series(whole_day, lane) if 18 <= t.hour < 22
        ]  # busy hours: rounding is negligible
        ratios = []
        for t, value in series:
            local = mean_between(series, t - timedelta(minutes=5), t + timedelta(minutes=5))
            ratios.append(value / local)
        assert max(ratios) < 1.12 and min(ratios) > 0.88
        spread = math.sqrt(sum((r - 1) ** 2 for r in ratios) / len(ratios))
        assert 0.01 < spread < 0.08


# -------------------------------------------------------------------------- surge ----


def test_surge_crosses_orange_after_a_long_rise_from_below_blue(
    surge_evening: list[SensorReading],
) -> None:
    crossed = []
    for lane in LANES:
        series = density_series(surge_evening, lane)
        first = next(((t, d) for t, d in series if d >= ORANGE_DENSITY), None)
        if first is None:
            continue
        crossed.append(lane.id)
        t4 = first[0]
        window = [(t, d) for t, d in series if t4 - timedelta(minutes=15) <= t < t4]
        assert window[0][1] < BLUE_DENSITY, "15 minutes before 橙 the lane was not below 2"
        assert all(d < ORANGE_DENSITY for _, d in window)
        blocks = [
            mean_between(series, t4 - timedelta(minutes=m), t4 - timedelta(minutes=m - 5))
            for m in (15, 10, 5)
        ]
        assert blocks == sorted(blocks) and len(set(blocks)) == 3, blocks
        # ~0.2 persons/m² per minute: from 2 to 4 takes about ten minutes.
        t2 = next(t for t, d in series if d >= BLUE_DENSITY)
        assert timedelta(minutes=7) <= t4 - t2 <= timedelta(minutes=14)
        # The peak is ~5.5 (红), then it falls back to ordinary.
        peak = max(d for _, d in series)
        assert RED_DENSITY <= peak <= 6.2
        tail = [d for t, d in series if t >= t4 + SURGE_LENGTH]
        assert tail and max(tail) < BLUE_DENSITY
    assert crossed, "no 田子坊 lane reached 4 persons/m²"


def test_surge_is_in_the_evening_and_other_zones_stay_ordinary(
    surge_evening: list[SensorReading],
) -> None:
    scheme = plan(ZONES, DAY.replace(hour=17), timedelta(hours=4), scenario="surge")
    assert {s.zone_id for s in scheme.surges} == {z.id for z in LANES}
    assert all(19 <= s.onset.astimezone(BEIJING).hour < 20 for s in scheme.surges)
    surged = {s.zone_id for s in scheme.surges}
    assert_ordinary(surge_evening, [z for z in ZONES if z.id not in surged])
    assert all(r.value == 0 for r in surge_evening if r.kind is SensorKind.SMOKE)


def test_surge_curve_shape() -> None:
    assert surge_density(-1) is None
    assert surge_density(SURGE_LENGTH.total_seconds() / 60) is None
    assert surge_density(5) == pytest.approx(0.8)
    assert surge_density(15) == pytest.approx(2.8)  # 0.2 per minute
    assert surge_density(28.5) == pytest.approx(5.5)
    peak = max(surge_density(m / 10) or 0.0 for m in range(int(SURGE_LENGTH.total_seconds() / 6)))
    assert peak == pytest.approx(5.5)


def test_a_surge_window_without_an_evening_still_surges() -> None:
    start = DAY.replace(hour=9)
    readings = generate(ZONES, start, timedelta(hours=2), scenario="surge")
    peak = max(d for lane in LANES for _, d in density_series(readings, lane))
    assert peak >= RED_DENSITY


# -------------------------------------------------------------------------- smoke ----


def alarm_runs(readings: list[SensorReading]) -> dict[str, list[SensorReading]]:
    """Smoke detectors that ever read 1 → all of their readings."""
    smoke = by_sensor(r for r in readings if r.kind is SensorKind.SMOKE)
    return {s: rs for s, rs in smoke.items() if any(r.value == 1 for r in rs)}


def test_smoke_has_exactly_the_intended_alarms(smoke_window: list[SensorReading]) -> None:
    runs = alarm_runs(smoke_window)
    zones: dict[str, list[str]] = defaultdict(list)
    for sensor, rs in runs.items():
        zones[rs[0].zone_id].append(sensor)
    assert len(runs) == 3 and len(zones) == 2, runs.keys()
    single_zone = next(z for z, s in zones.items() if len(s) == 1)
    pair_zone = next(z for z, s in zones.items() if len(s) == 2)
    assert sorted(zones[pair_zone]) == list(smoke_detector_ids(ZONES[pair_zone]))

    def first_alarm(sensor: str) -> datetime:
        return next(r.observed_at for r in runs[sensor] if r.value == 1)

    single_at = first_alarm(zones[single_zone][0])
    pair_at = sorted(first_alarm(s) for s in zones[pair_zone])
    assert single_at < pair_at[0], "the single alarm comes first"
    assert timedelta(0) < pair_at[1] - pair_at[0] <= timedelta(minutes=2)
    for sensor, rs in runs.items():
        values = [r.value for r in rs]
        start = values.index(1)
        stop = values.index(0, start)
        # One contiguous alarm of a few readings, then back to 0 for good.
        assert 2 <= stop - start <= 5, (sensor, values)
        assert set(values[stop:]) == {0}
        assert set(values[:start]) <= {0}

    # Matches the plan, and every other detector stays at 0 throughout.
    scheme = plan(ZONES, DAY.replace(hour=9), timedelta(hours=3), scenario="smoke", seed=11)
    assert {a.sensor_id for a in scheme.alarms} == set(runs)
    assert {a.start for a in scheme.alarms} == {first_alarm(s) for s in runs}


def test_smoke_fire_levels_by_the_real_rule(smoke_window: list[SensorReading]) -> None:
    """Replaying the detectors through ``fire_level``: 橙 in one zone, 红 in the other."""
    from alerts.rules import fire_level

    rules = RuleSet()
    alarms: dict[str, dict[str, datetime]] = defaultdict(dict)
    worst: dict[str, Level] = {}
    for reading in smoke_window:
        if reading.kind is not SensorKind.SMOKE:
            continue
        zone_alarms = alarms[reading.zone_id]
        if reading.value == 1:
            zone_alarms.setdefault(reading.sensor_id, reading.observed_at)
        else:
            zone_alarms.pop(reading.sensor_id, None)
        level = fire_level(zone_alarms, rules)
        if level is not None and level.rank > worst.get(reading.zone_id, Level.BLUE).rank:
            worst[reading.zone_id] = level
    assert sorted(worst.values(), key=lambda lvl: lvl.rank) == [Level.ORANGE, Level.RED]
    assert all(not a for a in alarms.values()), "a detector is still in alarm at the end"


def test_smoke_detectors_report_on_change_and_every_five_minutes(
    smoke_window: list[SensorReading],
) -> None:
    for sensor, rs in alarm_runs(smoke_window).items():
        periodic = [
            r for r in rs if (r.observed_at - rs[0].observed_at) % SMOKE_INTERVAL == timedelta(0)
        ]
        assert len(periodic) == 3 * 60 // 5, sensor
        assert 1 <= len(rs) - len(periodic) <= 2  # the alarm and its clearance, at once


def test_smoke_is_otherwise_an_ordinary_day(smoke_window: list[SensorReading]) -> None:
    assert_ordinary(smoke_window, ZONES)


def test_smoke_in_a_short_window_still_clears() -> None:
    readings = generate(ZONES, DAY.replace(hour=9), timedelta(minutes=10), scenario="smoke")
    runs = alarm_runs(readings)
    assert len(runs) == 3
    assert all(rs[-1].value == 0 for rs in runs.values())


# --------------------------------------------------------------------------- demo ----


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start_minute=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_demo_shows_alerts_in_a_cli_sized_window(start_minute: int) -> None:
    """Whatever the time of day, the CLI's default 240 minutes show crowding and smoke."""
    start = DAY + timedelta(minutes=start_minute)
    duration = timedelta(minutes=240)
    readings = generate(ZONES, start, duration, scenario="demo")
    scheme = plan(ZONES, start, duration, scenario="demo")
    assert len(scheme.surges) == 1
    lane = ZONES[scheme.surges[0].zone_id]
    assert lane.site == "tianzifang"
    peak = max(d for _, d in density_series(readings, lane))
    assert peak >= RED_DENSITY
    assert alarm_runs(readings)
    assert_ordinary(readings, [z for z in ZONES if z.id != lane.id])


def test_demo_at_speed_60_for_20_minutes_shows_alerts() -> None:
    """20 minutes at --speed 60 replay 20 hours: the evening surge and several smoke alarms."""
    start = datetime(2024, 5, 4, 9, 17, tzinfo=CST)
    readings = generate(ZONES, start, timedelta(hours=20), scenario="demo")
    scheme = plan(ZONES, start, timedelta(hours=20), scenario="demo")
    onset = scheme.surges[0].onset.astimezone(BEIJING)
    assert (onset.hour, onset.minute) == (19, 0)
    assert len(alarm_runs(readings)) >= 4
    lane = ZONES[scheme.surges[0].zone_id]
    assert max(d for _, d in density_series(readings, lane)) >= RED_DENSITY


def test_demo_in_a_short_window() -> None:
    """Even 20 minutes of event time show a crowding level and a smoke alarm."""
    start = DAY.replace(hour=10)
    readings = generate(ZONES, start, timedelta(minutes=20), scenario="demo")
    scheme = plan(ZONES, start, timedelta(minutes=20), scenario="demo")
    lane = ZONES[scheme.surges[0].zone_id]
    assert max(d for _, d in density_series(readings, lane)) >= BLUE_DENSITY
    assert alarm_runs(readings)


def test_a_small_registry_works_for_every_scenario() -> None:
    small = ZoneRegistry([z for z in ZONES if z.site == "mengxi"])
    for scenario in SCENARIOS:
        readings = generate(small, DAY.replace(hour=18), timedelta(hours=2), scenario=scenario)
        assert {r.zone_id for r in readings} <= small.ids()


# ---------------------------------------------------------------------------- run ----


class FakeFuture:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_errback(self, callback: Any) -> FakeFuture:
        if self.error is not None:
            callback(self.error)
        return self


class FakeProducer:
    def __init__(self, fail_on: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes, float]] = []
        self.flushed = False
        self.closed = False
        self.fail_on = fail_on

    def send(self, topic: str, *, key: bytes, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value, time.monotonic()))
        failed = self.fail_on is not None and len(self.sent) == self.fail_on
        return FakeFuture(RuntimeError("broker said no") if failed else None)

    def flush(self) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    fake = FakeProducer()
    monkeypatch.setattr(simulator, "_producer", lambda bootstrap: fake)
    return fake


def spaced(count: int, gap: timedelta) -> list[SensorReading]:
    zone = ZONES["tianzifang-taikang-210"]
    return [
        SensorReading(
            reading_id=f"r-{i}",
            sensor_id=f"{zone.id}-cam-1",
            zone_id=zone.id,
            kind=SensorKind.PEOPLE_COUNT,
            value=float(i),
            observed_at=DAY + gap * i,
        )
        for i in range(count)
    ]


def test_run_sends_every_reading_keyed_by_zone(producer: FakeProducer) -> None:
    readings = generate(ZONES, DAY.replace(hour=19), timedelta(minutes=2))
    seen: list[SensorReading] = []
    assert run("x:1", "t", readings, speed=0, on_sent=seen.append) == len(readings)
    assert seen == readings
    assert [(t, k, v) for t, k, v, _ in producer.sent] == [
        ("t", r.zone_id.encode("utf-8"), encode_reading(r)) for r in readings
    ]
    assert producer.flushed and producer.closed


def test_run_replays_event_time_at_speed(producer: FakeProducer) -> None:
    readings = spaced(5, timedelta(seconds=2))  # 8 s of event time
    started = time.monotonic()
    assert run("x:1", "t", readings, speed=20) == 5  # → 0.4 s
    elapsed = time.monotonic() - started
    assert 0.38 <= elapsed < 2.0
    times = [at - producer.sent[0][3] for *_, at in producer.sent]
    for i, offset in enumerate(times):
        assert offset >= 0.1 * i - 0.01


@pytest.mark.parametrize("speed", [0, math.inf])
def test_run_as_fast_as_possible(producer: FakeProducer, speed: float) -> None:
    started = time.monotonic()
    assert run("x:1", "t", spaced(50, timedelta(minutes=1)), speed=speed) == 50
    assert time.monotonic() - started < 0.5


def test_run_stops_early_even_while_waiting(producer: FakeProducer) -> None:
    stop = threading.Event()

    def after(reading: SensorReading) -> None:
        if reading.value == 2:
            stop.set()

    assert (
        run("x:1", "t", spaced(10, timedelta(seconds=1)), speed=20, on_sent=after, stop=stop) == 3
    )
    assert producer.flushed and producer.closed

    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    assert run("x:1", "t", spaced(3, timedelta(hours=1)), speed=1, stop=stop) == 1
    assert time.monotonic() - started < 2.0
    timer.join()


def test_run_raises_a_delivery_failure_after_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer(fail_on=2)
    monkeypatch.setattr(simulator, "_producer", lambda bootstrap: fake)
    with pytest.raises(RuntimeError, match="broker said no"):
        run("x:1", "t", spaced(3, timedelta(seconds=1)), speed=0)
    assert fake.closed


@pytest.mark.parametrize("speed", [-1.0, math.nan])
def test_run_refuses_a_bad_speed(producer: FakeProducer, speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        run("x:1", "t", [], speed=speed)
