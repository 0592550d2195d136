"""预判: when will a zone's crowd reach a level? A robust trend over the recent readings.

Camera counts are noisy (±5–10 % per reading), so two readings say nothing. We fit a least-squares
line to the density of the last few minutes and believe its slope only when it is clearly
positive: at least ``min_t`` standard errors above zero and at least ``min_slope`` persons/m² a
minute. A flat series with bounded noise therefore never forecasts anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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


def fit_trend(samples: Sequence[tuple[float, float]]) -> Trend | None:
    """Least-squares line through ``(t_seconds, value)`` samples; ``None`` if under 3 points or
    all at one time. The line's level is evaluated at the newest sample's time."""
    n = len(samples)
    if n < 3:
        return None
    t0 = samples[-1][0]
    xs = [(t - t0) / 60.0 for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return Trend(at=t0, level=intercept, slope_per_min=slope, stderr_per_min=stderr, points=n)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The trend says the value reaches ``target`` in ``minutes`` (from the newest sample)."""

    minutes: float
    expected_at: float  # epoch seconds
    target: float
    rate_per_min: float
    current: float


def forecast_crossing(
    samples: Sequence[tuple[float, float]],
    target: float,
    horizon_minutes: float,
    *,
    min_points: int,
    min_slope: float,
    min_t: float,
) -> Forecast | None:
    """When the believable trend of ``samples`` reaches ``target`` within the horizon, say when.

    ``None`` when there are too few samples, the slope is not clearly positive, the value is
    already at the target, or the crossing lies beyond the horizon.
    """
    if len(samples) < min_points:
        return None
    trend = fit_trend(samples)
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
