"""Zone outlines in the registry: every bundled zone has one, estimated, valid and inside the
district's bounds; the loader refuses open, degenerate, self-crossing or out-of-bounds rings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from models.zones import Outline, ZoneRegistryError, load_bundled_zones, load_zones

pytestmark = pytest.mark.unit

SQUARE = [[121.468, 31.208], [121.469, 31.208], [121.469, 31.209], [121.468, 31.209]]
BOUNDS = {"south": 31.194, "west": 121.456, "north": 31.214, "east": 121.486}


def ring(points: list[list[float]]) -> list[list[float]]:
    return [*points, points[0]]


def zone(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "lane-a",
        "name": {"zh": "甲弄", "en": "Lane A"},
        "site": "lanes",
        "grid": "zhongtai",
        "area_m2": 100,
        "outline": {"estimated": True, "points": ring(SQUARE)},
    }
    base.update(overrides)
    return base


def load(tmp_path: Path, *zones: dict[str, Any], bounds: Any = BOUNDS) -> Any:
    document: dict[str, Any] = {"zones": list(zones)}
    if bounds is not None:
        document["bounds"] = bounds
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    return load_zones(path)


def test_every_bundled_zone_has_an_estimated_outline_inside_the_bounds() -> None:
    registry = load_bundled_zones()
    assert registry.bounds is not None
    for z in registry:
        assert z.outline is not None, z.id
        assert z.outline.estimated, z.id
        assert all(registry.bounds.contains(lon, lat) for lon, lat in z.outline.points), z.id
        if z.location is not None:  # the point a CAP circle uses sits in the outline's middle
            lon, lat = z.outline.centroid()
            assert (round(lon, 5), round(lat, 5)) == (z.location.lon, z.location.lat), z.id


def test_the_tianzifang_lanes_no_longer_share_a_coordinate() -> None:
    registry = load_bundled_zones()
    lanes = [z for z in registry if z.site == "tianzifang"]
    assert len(lanes) == 5
    assert len({(z.location.lat, z.location.lon) for z in lanes if z.location}) == 5
    assert len({tuple(z.outline.points) for z in lanes if z.outline}) == 5


def test_bundled_outlines_do_not_overlap_except_a_zone_inside_another() -> None:
    def box(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), min(ys), max(xs), max(ys)

    zones = [z for z in load_bundled_zones() if z.outline]
    overlapping = set()
    for i, a in enumerate(zones):
        for b in zones[i + 1 :]:
            ax0, ay0, ax1, ay1 = box(a.outline.points)  # type: ignore[union-attr]
            bx0, by0, bx1, by1 = box(b.outline.points)  # type: ignore[union-attr]
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                overlapping.add((a.id, b.id))
    assert overlapping == {("mengxi-residential", "mengxi-low-carbon-garden")}


def test_a_valid_outline_loads_with_its_centroid(tmp_path: Path) -> None:
    registry = load(tmp_path, zone())
    outline = registry["lane-a"].outline
    assert outline is not None
    assert outline.centroid() == pytest.approx((121.4685, 31.2085))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (SQUARE, "must be closed"),
        ([[121.468, 31.208], [121.469, 31.208], [121.468, 31.208]], "at least 4"),
        (ring([[121.468, 31.208], [121.469, 31.208], [121.469, 31.208]]), "3 distinct"),
        (ring([[121.468, 31.208], [121.469, 31.208], [121.470, 31.208]]), "enclose an area"),
        (
            ring([[121.468, 31.208], [121.470, 31.210], [121.470, 31.208], [121.468, 31.209]]),
            "must not cross itself",
        ),
        (ring([[121.468, 31.208], [121.469, "31.2"], [121.469, 31.209]]), "valid number"),
    ],
)
def test_bad_outlines_are_refused_naming_the_zone_and_field(
    tmp_path: Path, points: list[Any], message: str
) -> None:
    with pytest.raises(ZoneRegistryError) as caught:
        load(tmp_path, zone(outline={"estimated": True, "points": points}))
    assert caught.value.zone_id == "lane-a"
    assert caught.value.field is not None and caught.value.field.startswith("outline")
    assert message in str(caught.value)


def test_an_outline_must_say_whether_it_is_estimated(tmp_path: Path) -> None:
    with pytest.raises(ZoneRegistryError) as caught:
        load(tmp_path, zone(outline={"points": ring(SQUARE)}))
    assert caught.value.field == "outline.estimated"


def test_outlines_and_locations_outside_the_bounds_are_refused(tmp_path: Path) -> None:
    far = [[121.50, 31.30], [121.51, 31.30], [121.51, 31.31], [121.50, 31.31]]
    with pytest.raises(ZoneRegistryError) as caught:
        load(
            tmp_path,
            zone(outline={"estimated": True, "points": ring(far)}),
            zone(id="lane-b", location={"lat": 31.0, "lon": 121.468}),
        )
    problems = {(p[0], p[1]) for p in caught.value.problems}
    assert problems == {("lane-a", "outline.points.0"), ("lane-b", "location")}


@pytest.mark.parametrize(
    ("bounds", "field"),
    [
        ({**BOUNDS, "south": 31.3}, "bounds"),
        ({**BOUNDS, "extra": 1}, "bounds.extra"),
        ({"south": 31.1, "west": 121.4, "north": 31.3}, "bounds.east"),
    ],
)
def test_bad_bounds_are_refused(tmp_path: Path, bounds: dict[str, Any], field: str) -> None:
    with pytest.raises(ZoneRegistryError) as caught:
        load(tmp_path, zone(), bounds=bounds)
    assert caught.value.field == field


def test_without_bounds_any_valid_outline_loads(tmp_path: Path) -> None:
    far = [[2.35, 48.85], [2.36, 48.85], [2.36, 48.86]]
    registry = load(tmp_path, zone(outline={"estimated": False, "points": ring(far)}), bounds=None)
    assert registry.bounds is None
    assert Outline.model_validate({"estimated": False, "points": ring(far)}).estimated is False
