"""The zone registry: the bundled 打浦桥 file, the loader's errors, and zone arithmetic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.zones import (
    Grid,
    LocalizedText,
    Zone,
    ZoneRegistry,
    ZoneRegistryError,
    bundled_zones_path,
    load_bundled_zones,
    load_zones,
)

pytestmark = pytest.mark.unit


def zone_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "tianzifang-210",
        "name": {"zh": "田子坊 泰康路210弄", "en": "Tianzifang, Lane 210"},
        "site": "tianzifang",
        "grid": "zhongtai",
        "area_m2": 400,
        "capacity": 400,
    }
    base.update(overrides)
    return base


def write_registry(tmp_path: Path, document: Any, name: str = "zones.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def load_error(path: Path) -> ZoneRegistryError:
    with pytest.raises(ZoneRegistryError) as caught:
        load_zones(path)
    return caught.value


# ------------------------------------------------------------------ the bundled registry ----


@pytest.fixture(scope="module")
def bundled() -> ZoneRegistry:
    return load_bundled_zones()


def test_bundled_registry_loads(bundled: ZoneRegistry) -> None:
    assert bundled_zones_path().name == "zones.yaml"
    assert bundled_zones_path().is_file()
    assert 15 <= len(bundled) <= 25
    assert len(bundled.ids()) == len(bundled)
    assert load_zones(bundled_zones_path()).ids() == bundled.ids()


def test_bundled_registry_covers_all_four_grids(bundled: ZoneRegistry) -> None:
    assert {zone.grid for zone in bundled} == set(Grid)
    for grid in Grid:
        assert bundled.by_grid(grid)


def test_bundled_registry_has_tianzifang_main_lanes(bundled: ZoneRegistry) -> None:
    tianzifang = bundled.sites()["tianzifang"]
    names = " ".join(zone.name.zh for zone in tianzifang)
    for lane in ("210弄", "248弄", "274弄"):
        assert lane in names
    for zone_id in ("tianzifang-taikang-210", "tianzifang-taikang-248", "tianzifang-taikang-274"):
        zone = bundled.get(zone_id)
        assert zone is not None
        assert zone.grid is Grid.ZHONGTAI
        assert zone.capacity is not None  # a scenic area's lanes have a 最大承载量
    assert any("泰康路" in zone.name.zh and "入口" in zone.name.zh for zone in tianzifang)


@pytest.mark.parametrize(
    ("site", "grid", "zh"),
    [
        ("tianzifang", Grid.ZHONGTAI, "田子坊"),
        ("riyueguang", Grid.ZHONGTAI, "日月光中心广场"),
        ("luone", Grid.ZHONGSHUN, "凯德晶萃广场"),
        ("zhonghai-intl-centre", Grid.ZHONGSHUN, "中海国际中心"),
        ("haihuayuan", Grid.ZHONGHAI, "海花园"),
        ("jinyulan", Grid.ZHONGHAI, "金玉兰广场"),
        ("yinxing", Grid.ZHONGHUI, "银杏"),
        ("mengxi", Grid.ZHONGHUI, "蒙西"),
        ("mengxi-day-care-centre", Grid.ZHONGHUI, "蒙西日间照料中心"),
        ("huilong-xincheng", Grid.ZHONGHUI, "汇龙新城"),
        ("dapuqiao-children-centre", Grid.ZHONGHUI, "儿童服务中心"),
    ],
)
def test_bundled_registry_names_each_place(
    bundled: ZoneRegistry, site: str, grid: Grid, zh: str
) -> None:
    zones = bundled.sites()[site]
    assert all(zone.grid is grid for zone in zones)
    assert any(zh in zone.name.zh for zone in zones)


def test_bundled_registry_has_low_carbon_garden_and_metro_entrance(bundled: ZoneRegistry) -> None:
    assert any("低碳花园" in zone.name.zh for zone in bundled.sites()["mengxi"])
    assert any("地铁" in zone.name.zh for zone in bundled.sites()["riyueguang"])


def test_every_estimate_says_where_it_comes_from(bundled: ZoneRegistry) -> None:
    for zone in bundled:
        if zone.estimated:
            assert zone.notes is not None
            assert len(zone.notes.strip()) > 20, zone.id


def test_bundled_capacities_follow_the_stated_design_density(bundled: ZoneRegistry) -> None:
    # The file's header states capacity = floor(area × 3.0 persons/m²).
    for zone in bundled:
        if zone.capacity is not None:
            assert zone.capacity == math.floor(zone.area_m2 * 3.0), zone.id


# ------------------------------------------------------------------------- registry API ----


def test_registry_lookup_iteration_and_grouping() -> None:
    a = Zone.model_validate(zone_dict(id="lane-a"))
    b = Zone.model_validate(zone_dict(id="plaza-b", site="riyueguang"))
    c = Zone.model_validate(zone_dict(id="estate-c", site="mengxi", grid="zhonghui"))
    registry = ZoneRegistry([a, b, c])

    assert list(registry) == [a, b, c]
    assert len(registry) == 3
    assert registry.get("plaza-b") is b
    assert registry["plaza-b"] is b
    assert registry.get("nowhere") is None
    assert "lane-a" in registry
    assert a in registry
    assert "nowhere" not in registry
    assert 42 not in registry
    assert registry.ids() == frozenset({"lane-a", "plaza-b", "estate-c"})
    assert registry.sites() == {"tianzifang": [a], "riyueguang": [b], "mengxi": [c]}
    assert registry.by_grid(Grid.ZHONGTAI) == [a, b]
    assert registry.by_grid("zhonghui") == [c]
    assert registry.by_grid(Grid.ZHONGHAI) == []
    with pytest.raises(ValueError):
        registry.by_grid("pudong")


def test_registry_cannot_be_changed_through_what_it_returns() -> None:
    zone = Zone.model_validate(zone_dict())
    registry = ZoneRegistry([zone])
    registry.sites()["tianzifang"].clear()
    registry.by_grid(Grid.ZHONGTAI).clear()
    assert list(registry) == [zone]
    with pytest.raises(AttributeError):
        registry.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        zone.area_m2 = 1.0  # type: ignore[misc]


def test_registry_rejects_duplicate_ids() -> None:
    zone = Zone.model_validate(zone_dict())
    with pytest.raises(ZoneRegistryError) as caught:
        ZoneRegistry([zone, zone])
    assert caught.value.zone_id == "tianzifang-210"
    assert caught.value.field == "id"


# --------------------------------------------------------------------- zone arithmetic ----


def test_density_and_occupancy() -> None:
    zone = Zone.model_validate(zone_dict(area_m2=400, capacity=800))
    assert zone.density(0) == 0.0
    assert zone.density(1000) == pytest.approx(2.5)
    assert zone.occupancy(400) == pytest.approx(0.5)
    assert zone.occupancy(1000) == pytest.approx(1.25)


def test_occupancy_is_none_without_capacity() -> None:
    zone = Zone.model_validate(zone_dict(capacity=None))
    assert zone.occupancy(100) is None
    assert zone.density(100) == pytest.approx(0.25)


@pytest.mark.parametrize("people", [-1, math.nan, math.inf])
def test_density_rejects_impossible_counts(people: float) -> None:
    zone = Zone.model_validate(zone_dict())
    with pytest.raises(ValueError):
        zone.density(people)
    with pytest.raises(ValueError):
        zone.occupancy(people)


def test_localized_text_must_not_be_blank() -> None:
    with pytest.raises(ValidationError):
        LocalizedText(zh="  ", en="Tianzifang")


# ------------------------------------------------------------------------ loader errors ----


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"area_m2": -5}, "area_m2", "greater than 0"),
        ({"area_m2": 0}, "area_m2", "greater than 0"),
        ({"area_m2": "400"}, "area_m2", "valid number"),
        ({"grid": "pudong"}, "grid", "zhongtai"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"name": {"en": "Tianzifang"}}, "name.zh", "Field required"),
        ({"capacity": 0}, "capacity", "greater than 0"),
        ({"capacity": 10.5}, "capacity", "integer"),
        ({"location": {"lat": 91, "lon": 121.469}}, "location.lat", "less than or equal to 90"),
        ({"site": "Tian Zi Fang"}, "site", "pattern"),
        ({"estimated": True}, "notes", "estimated zone"),
        ({"estimated": True, "notes": "   "}, "notes", "estimated zone"),
    ],
)
def test_zone_errors_name_file_zone_and_field(
    tmp_path: Path, overrides: dict[str, Any], field: str, fragment: str
) -> None:
    path = write_registry(tmp_path, {"zones": [zone_dict(**overrides)]})
    error = load_error(path)
    assert error.file == str(path)
    assert error.zone_id == "tianzifang-210"
    assert error.field == field
    assert len(error.problems) == 1
    message = str(error)
    assert str(path) in message
    assert "zone 'tianzifang-210'" in message
    assert f"field '{field}'" in message
    assert fragment in message


def test_error_message_has_the_documented_shape(tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"zones": [zone_dict(area_m2=-1)]})
    assert str(load_error(path)) == (
        f"{path}: zone 'tianzifang-210' field 'area_m2': Input should be greater than 0"
    )


def test_every_broken_zone_is_listed(tmp_path: Path) -> None:
    document = {
        "zones": [
            zone_dict(id="lane-a", area_m2=-1),
            zone_dict(id="lane-b"),
            zone_dict(id="lane-c", grid="pudong", name={"en": "C"}),
        ]
    }
    error = load_error(write_registry(tmp_path, document))
    assert error.problems == [
        ("lane-a", "area_m2", "Input should be greater than 0"),
        ("lane-c", "name.zh", "Field required"),
        ("lane-c", "grid", "Input should be 'zhongtai', 'zhongshun', 'zhonghai' or 'zhonghui'"),
    ]
    message = str(error)
    assert message.startswith(f"{error.file}: 3 problems")
    for line in message.splitlines()[1:]:
        assert line.startswith(f"{error.file}: zone 'lane-")


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    document = {"zones": [zone_dict(), zone_dict(site="other")]}
    error = load_error(write_registry(tmp_path, document))
    assert error.zone_id == "tianzifang-210"
    assert error.field == "id"
    assert "duplicate id" in str(error)
    assert "zones[0]" in str(error)


def test_zone_without_id_is_named_by_position(tmp_path: Path) -> None:
    raw = zone_dict()
    del raw["id"]
    error = load_error(write_registry(tmp_path, {"zones": [zone_dict(id="ok-zone"), raw]}))
    assert error.zone_id is None
    assert error.field == "id"
    assert "zones[1]" in str(error)


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text(
        "zones:\n"
        "  - id: lane-a\n"
        "    name: {zh: 甲, en: A}\n"
        "    site: tianzifang\n"
        "    grid: zhongtai\n"
        "    area_m2: 400\n"
        "    area_m2: -4\n",
        "utf-8",
    )
    error = load_error(path)
    assert "duplicate key 'area_m2'" in str(error)
    assert "line 7" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    error = load_error(path)
    assert (error.file, error.zone_id, error.field) == (str(path), None, None)
    assert "nope.yaml" in str(error)
    assert "not found" in str(error)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text("zones:\n  - id: lane-a\n    name: {zh: 甲, en: A\n", "utf-8")
    error = load_error(path)
    assert (error.zone_id, error.field) == (None, None)
    assert str(error).startswith(f"{path}: not valid YAML (line ")
    assert "line " in str(error)


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("", None, "got null"),
        ("- id: lane-a\n", None, "got list"),
        ("zones: {id: lane-a}\n", "zones", "got dict"),
        ("zones:\n", "zones", "got null"),
        ("zone: []\n", "zone", "unknown top-level key"),
        ("zones: []\n", "zones", "no zones"),
    ],
)
def test_top_level_must_be_a_zones_list(
    tmp_path: Path, text: str, field: str | None, fragment: str
) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text(text, "utf-8")
    error = load_error(path)
    assert error.zone_id is None
    assert error.field == field
    assert str(path) in str(error)
    assert fragment in str(error)


def test_a_zone_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(write_registry(tmp_path, {"zones": [zone_dict(), "lane-b"]}))
    assert (error.zone_id, error.field) == (None, None)
    assert str(error) == f"{error.file}: zones[1]: a zone must be a mapping, got str"


# ------------------------------------------------------------------------- properties ----

slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{1,62}", fullmatch=True)
texts = st.text(
    st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40
).filter(lambda text: text.strip() != "")
areas = st.one_of(
    st.integers(min_value=1, max_value=10**7),
    st.floats(min_value=0, max_value=1e7, exclude_min=True, allow_nan=False),
)


@st.composite
def valid_zone_dicts(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": draw(slugs),
        "name": {"zh": draw(texts), "en": draw(texts)},
        "site": draw(slugs),
        "grid": draw(st.sampled_from([grid.value for grid in Grid])),
        "area_m2": draw(areas),
    }
    if draw(st.booleans()):
        raw["capacity"] = draw(st.integers(min_value=1, max_value=10**6))
    if draw(st.booleans()):
        raw["location"] = {
            "lat": draw(st.floats(min_value=-90, max_value=90)),
            "lon": draw(st.floats(min_value=-180, max_value=180)),
        }
    estimated = draw(st.booleans())
    if estimated or draw(st.booleans()):
        raw["estimated"] = estimated
    if estimated or draw(st.booleans()):
        raw["notes"] = draw(texts)
    return raw


property_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@property_settings
@given(raw=valid_zone_dicts())
def test_valid_zones_round_trip_through_the_loader(tmp_path: Path, raw: dict[str, Any]) -> None:
    registry = load_zones(write_registry(tmp_path, {"zones": [raw]}))
    (zone,) = list(registry)
    assert registry.get(raw["id"]) is zone
    # Exactly the fields given come back, with the values given (ints compare equal to floats).
    assert zone.model_dump(exclude_unset=True) == raw
    assert zone == Zone.model_validate(raw)
    assert zone.area_m2 == raw["area_m2"]
    assert zone.grid == raw["grid"]


@property_settings
@given(
    raw=valid_zone_dicts(),
    area=st.one_of(
        st.integers(max_value=0), st.floats(max_value=0, allow_nan=False, allow_infinity=False)
    ),
)
def test_non_positive_areas_are_rejected_naming_area_m2(
    tmp_path: Path, raw: dict[str, Any], area: float
) -> None:
    raw["area_m2"] = area
    error = load_error(write_registry(tmp_path, {"zones": [raw]}))
    assert error.problems == [(raw["id"], "area_m2", "Input should be greater than 0")]
    assert "field 'area_m2'" in str(error)
