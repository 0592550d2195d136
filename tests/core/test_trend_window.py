"""The forecast's sliding window (issue 11): its exact running sums give the textbook fit of the
samples it holds, whatever the order they came in, however many expired, however long it ran —
so its O(1) step changes no forecast."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.zone.forecast import Trend, TrendWindow

pytestmark = pytest.mark.unit

START = 1_790_000_000.0  # an epoch second in 2026


def exact_fit(samples: list[tuple[float, float]]) -> tuple[Fraction, Fraction, Fraction] | None:
    """The least-squares line of ``samples`` in rationals: (slope per minute, level at the newest
    time, the slope's variance). Times are whole microseconds, as a reading's time is; values
    in 2**-40 (the window's grain, ~1e-12 persons/m²)."""
    n = len(samples)
    if n < 3:
        return None
    ts = [Fraction(round(t * 1_000_000), 1_000_000 * 60) for t, _ in samples]  # minutes
    ys = [Fraction(round(math.ldexp(v, 40)), 2**40) for _, v in samples]  # the window's grain
    mt, my = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx == 0:
        return None
    sxy = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True))
    slope = sxy / sxx
    level = my + slope * (ts[-1] - mt)
    rss = sum((y - (my + slope * (t - mt))) ** 2 for t, y in zip(ts, ys, strict=True))
    return slope, level, rss / (n - 2) / sxx


def assert_exact_fit(got: Trend | None, samples: list[tuple[float, float]]) -> None:
    want = exact_fit(samples)
    assert (got is None) == (want is None)
    if got is None or want is None:
        return
    slope, level, variance = want
    assert got.at == samples[-1][0] and got.points == len(samples)
    # Exact but for the last rounding to a float.
    assert got.slope_per_min == pytest.approx(float(slope), rel=1e-12, abs=1e-9)
    assert got.level == pytest.approx(float(level), rel=1e-12, abs=1e-9)
    assert got.stderr_per_min**2 == pytest.approx(float(variance), rel=1e-9, abs=1e-15)


# (milliseconds after the previous sample — negative: a late one, value in persons/m²)
steps = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 40_000), st.integers(-60_000, 0)),
        st.floats(0.0, 8.0),
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, span=st.sampled_from([60.0, 300.0, 900.0]))
def test_the_window_fits_exactly_the_samples_it_holds(
    steps: list[tuple[int, float]], span: float
) -> None:
    window = TrendWindow()
    held: list[tuple[float, float]] = []
    ms = 0
    clock = START
    for gap, value in steps:
        ms += gap
        t = START + ms / 1000
        clock = max(clock, t)
        window.add(t, value)
        held = sorted([*held, (t, value)])
        window.drop_until(clock - span)
        held = [s for s in held if s[0] > clock - span]
        assert window.samples == held
        assert len(window) == len(held)
        assert_exact_fit(window.fit(), held)


def test_the_fit_is_the_one_the_engine_made_before_within_float_rounding() -> None:
    # The two-pass float fit the engine used until the window kept sums, on a noisy rise.
    samples = [
        (START + 30.0 * i + (i % 3), 1.0 + 0.02 * i + 0.05 * ((i * 7) % 5)) for i in range(40)
    ]
    old = _two_pass(samples)
    new = TrendWindow.of(samples).fit()
    assert new is not None
    assert new.slope_per_min == pytest.approx(old[0], rel=1e-9)
    assert new.level == pytest.approx(old[1], rel=1e-9)
    assert new.stderr_per_min == pytest.approx(old[2], rel=1e-9)


def _two_pass(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    n, t0 = len(samples), samples[-1][0]
    xs = [(t - t0) / 60.0 for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    level = my - slope * mx
    rss = sum((y - (level + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, level, math.sqrt(rss / (n - 2) / sxx)


def test_an_exact_line_has_no_error_and_a_level_at_the_newest_sample() -> None:
    window = TrendWindow.of((START + 60.0 * i, 1.0 + 0.25 * i) for i in range(8))
    trend = window.fit()
    assert trend is not None
    assert trend.slope_per_min == 0.25 and trend.level == 2.75
    assert trend.stderr_per_min == 0.0 and trend.t_stat == math.inf


def test_a_window_fed_for_days_keeps_its_sums_exact() -> None:
    # Two days of one sample a second (past the re-anchoring point, ~19 h), 5 minutes kept: a
    # float running sum would have drifted by now; the integers give the fit of the last window.
    window = TrendWindow()
    t = START
    for i in range(2 * 86_400):
        t = START + i
        window.add(t, 2.0 + 0.5 * math.sin(i / 97.0) + (i % 7) * 0.01)
        window.drop_until(t - 300.0)
    assert len(window.samples) == 300
    assert_exact_fit(window.fit(), window.samples)


def test_samples_at_one_time_or_under_three_fit_nothing() -> None:
    assert TrendWindow.of([(START, 1.0), (START + 1, 2.0)]).fit() is None
    assert TrendWindow.of([(START, 1.0), (START, 2.0), (START, 3.0)]).fit() is None
    window = TrendWindow.of((START + i, float(i)) for i in range(5))
    window.drop_until(START + 10)
    assert window.samples == [] and len(window) == 0 and window.fit() is None
