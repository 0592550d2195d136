"""Zone states survive the table's JSON codec unchanged.

The table's changelog is written with Faust's ``json`` codec, which uses ``orjson`` when it is
importable (it is a runtime dependency) and the stdlib otherwise. The two differ where a state
could notice: orjson writes NaN and infinities as ``null`` and has its own float formatting.
States left by the benchmark's busy-evening workload (crowd surges, forecasts, gas spikes,
smoke alarms, duplicates) must come back identical and behave identically afterwards.
"""

from __future__ import annotations

from pathlib import Path

from faust.serializers import codecs

from alerts.config import default_rules
from alerts.engine import ZoneState, process_reading
from models.contracts import RejectedRecord, decode_reading
from models.zones import load_zones
from tools.bench import busy_evening, write_zones


def test_busy_evening_states_round_trip_through_the_table_codec(tmp_path: Path) -> None:
    areas = write_zones(tmp_path / "zones.yaml", 12, seed=7)
    zones = load_zones(tmp_path / "zones.yaml")
    rules = default_rules()
    states: dict[str, ZoneState] = {}
    for _, raw in busy_evening(areas, 4000, seed=7, tag="codec").records:
        try:
            reading = decode_reading(raw, zones)
        except RejectedRecord:
            continue
        zone = zones.get(reading.zone_id)
        assert zone is not None
        state = states.setdefault(zone.id, ZoneState(zone.id))
        process_reading(state, reading, zone, rules)
    assert len(states) == 12
    for state in states.values():
        data = state.to_dict()
        again = codecs.loads("json", codecs.dumps("json", data))
        assert again == data, state.zone_id
        assert ZoneState.from_dict(again).to_dict() == data
