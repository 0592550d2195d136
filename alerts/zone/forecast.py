"""预判: when will a zone's crowd reach a level? A robust trend over the recent readings.

Camera counts are noisy (±5–10 % per reading), so two readings say nothing. We fit a least-squares
line to the density of the last few minutes and believe its slope only when it is clearly
positive: at least ``min_t`` standard errors above zero and at least ``min_slope`` persons/m² a
minute. A flat series with bounded noise therefore never forecasts anything.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Trend:
    """A fitted line: ``value(t) = level + slope * (t - at)`` (t in seconds, slope per minute)."""

    at: float
    level: float
    slope_per_min: float
    stderr_per_min: float
    points: int

    @property
    def t_stat(self) -> float:
        """The slope in standard errors (``inf`` for a perfect fit)."""
        if self.stderr_per_min == 0:
            return math.inf if self.slope_per_min > 0 else 0.0
        return self.slope_per_min / self.stderr_per_min


#: Exact sums: times in integer microseconds, values in units of 2**-40 (≈ 1e-12 persons/m²).
_T_PER_S = 1_000_000
_Y_BITS = 40
#: Re-anchor the sums once the newest time is this far (µs, ~19 h) from the anchor, so the
#: integers stay small in a window that is never empty.
_REANCHOR_US = 1 << 36


@dataclass(slots=True)
class TrendWindow:
    """The samples ``(t_seconds, value)`` of a sliding window, oldest first, with the running
    sums of a least-squares fit kept exactly (Python integers), so adding a sample, dropping
    the expired ones and fitting cost the same however many samples the window holds: a
    camera every second pays what a camera every 30 s pays.

    Integers rather than floats because the sums are updated by subtraction for ever: float
    sums would drift, these do not. The fit from them equals the textbook two-pass fit of the
    same samples up to the last bits of a float (tests/core/test_early_warning.py holds it to
    that fit)."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    _anchor: int = 0
    _n: int = 0
    _st: int = 0
    _sy: int = 0
    _stt: int = 0
    _sty: int = 0
    _syy: int = 0

    @classmethod
    def of(cls, samples: Iterable[tuple[float, float]]) -> TrendWindow:
        window = cls()
        for t, v in sorted(samples):
            window.add(t, v)
        return window

    def __len__(self) -> int:
        return self._n

    def _ints(self, t: float, v: float) -> tuple[int, int]:
        return round(t * _T_PER_S) - self._anchor, round(math.ldexp(v, _Y_BITS))

    def _sum(self, t: float, v: float, sign: int) -> None:
        x, y = self._ints(t, v)
        self._n += sign
        self._st += sign * x
        self._sy += sign * y
        self._stt += sign * x * x
        self._sty += sign * x * y
        self._syy += sign * y * y

    def add(self, t: float, v: float) -> None:
        """Take a sample; one older than the newest goes to its place in time."""
        samples = self.samples
        if not samples:
            self._anchor = round(t * _T_PER_S)
        if samples and samples[-1] > (t, v):
            bisect.insort(samples, (t, v))
        else:
            samples.append((t, v))
        self._sum(t, v, 1)
        if abs(round(t * _T_PER_S) - self._anchor) > _REANCHOR_US:
            self._reanchor()

    def drop_until(self, cut: float) -> None:
        """Drop the samples at or before ``cut``."""
        samples = self.samples
        if not samples or samples[0][0] > cut:
            return
        k = bisect.bisect_right(samples, (cut, math.inf))
        if k == len(samples):
            self.clear()
            return
        for t, v in samples[:k]:
            self._sum(t, v, -1)
        del samples[:k]

    def clear(self) -> None:
        self.samples.clear()
        self._n = self._st = self._sy = self._stt = self._sty = self._syy = 0

    def _reanchor(self) -> None:
        samples = list(self.samples)
        self.clear()
        self._anchor = round(samples[-1][0] * _T_PER_S)
        for t, v in samples:
            self.samples.append((t, v))
            self._sum(t, v, 1)

    def fit(self) -> Trend | None:
        """Least-squares line through the samples; ``None`` if under 3 or all at one time.
        The line's level is evaluated at the newest sample's time."""
        n = self._n
        if n < 3:
            return None
        st, sy = self._st, self._sy
        sxx = n * self._stt - st * st  # n² × the variance of t, exactly
        if sxx == 0:
            return None
        sxy = n * self._sty - st * sy
        syy = n * self._syy - sy * sy
        newest = self.samples[-1][0]
        x0, _ = self._ints(newest, 0.0)
        per_min = 60 * _T_PER_S  # µs per minute
        slope = sxy * per_min / (sxx << _Y_BITS)
        level = (sy * sxx + sxy * (n * x0 - st)) / ((n * sxx) << _Y_BITS)
        residual = syy * sxx - sxy * sxy  # ≥ 0 (Cauchy–Schwarz), exactly
        stderr = math.sqrt(residual / ((n - 2) * sxx * sxx)) * per_min / (1 << _Y_BITS)
        return Trend(at=newest, level=level, slope_per_min=slope, stderr_per_min=stderr, points=n)


def fit_trend(samples: Iterable[tuple[float, float]]) -> Trend | None:
    """Least-squares line through ``(t_seconds, value)`` samples (see :meth:`TrendWindow.fit`)."""
    return TrendWindow.of(samples).fit()


@dataclass(frozen=True, slots=True)
class Forecast:
    """The trend says the value reaches ``target`` in ``minutes`` (from the newest sample)."""

    minutes: float
    expected_at: float  # epoch seconds
    target: float
    rate_per_min: float
    current: float


def forecast_crossing(
    window: TrendWindow,
    target: float,
    horizon_minutes: float,
    *,
    min_points: int,
    min_slope: float,
    min_t: float,
) -> Forecast | None:
    """When the believable trend of the window's samples reaches ``target`` within the horizon,
    say when.

    ``None`` when there are too few samples, the slope is not clearly positive, the value is
    already at the target, or the crossing lies beyond the horizon.
    """
    if len(window) < min_points:
        return None
    trend = window.fit()
    if trend is None or trend.slope_per_min < min_slope or trend.t_stat < min_t:
        return None
    if trend.level >= target:
        return None
    minutes = (target - trend.level) / trend.slope_per_min
    if minutes > horizon_minutes:
        return None
    return Forecast(
        minutes=minutes,
        expected_at=trend.at + minutes * 60.0,
        target=target,
        rate_per_min=trend.slope_per_min,
        current=trend.level,
    )
