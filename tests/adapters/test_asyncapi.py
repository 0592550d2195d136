"""The AsyncAPI contract (``docs/asyncapi.yaml``) says what the code does: the topic names, the
wire models' fields, constraints and enums, the dead-letter headers, and examples that decode —
the alert records being what the engine writes for the example readings, reports and commands,
and the rules stated in prose (which kind drives which risk, which input causes which change, the
evidence of each risk) being what the engine does."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from alerts.config import RuleBook, default_rules
from alerts.engine import (
    ZoneState,
    apply_command,
    check_silence,
    process_reading,
    process_report,
)
from alerts.state import alert_id_for
from models.cases import CaseCommand, decode_case_command
from models.contracts import (
    KIND_RANGES,
    MAX_RECORD_BYTES,
    REASONS,
    AlertCommand,
    AlertRecord,
    AlertStatus,
    Change,
    CommandAction,
    Level,
    ReportCategory,
    Risk,
    SensorKind,
    SensorReading,
    Summary,
    VolunteerReport,
    decode_command,
    decode_reading,
    decode_report,
)
from models.topics import TopicNames
from models.zones import Zone, load_bundled_zones
from streams.handlers import (
    INTERNAL_ERROR,
    CommandHandler,
    ReadingHandler,
    ReportHandler,
    Source,
    ZoneStates,
    dead_letter_headers,
)
from streams.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"

#: message name in components.messages -> (channel id, pydantic model)
WIRE_MESSAGES: dict[str, tuple[str, type[BaseModel]]] = {
    "SensorReading": ("sensorReadings", SensorReading),
    "VolunteerReport": ("volunteerReports", VolunteerReport),
    "AlertRecord": ("alerts", AlertRecord),
    "AlertCommand": ("alertCommands", AlertCommand),
    "CaseCommand": ("cases", CaseCommand),
}

#: the messages the worker takes in (and dead-letters when it cannot use them)
INPUT_MESSAGES = ("SensorReading", "VolunteerReport", "AlertCommand")

#: the JSON Schema keywords compared with pydantic's own schema of each field
FACETS = (
    "type",
    "enum",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "default",
)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as f:
        loaded = yaml.safe_load(f)
    assert isinstance(loaded, dict)
    return loaded


def resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (``#/a/b/c``) until a node without one."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def payload_schema(spec: dict[str, Any], message: str) -> dict[str, Any]:
    return resolve(spec, resolve(spec, spec["components"]["messages"][message])["payload"])


def required_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if info.is_required()}


def facets(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The comparable keywords of one property schema, with ``$ref`` resolved and pydantic's
    ``anyOf: [X, {type: null}]`` written as ``X`` with ``type: [X.type, "null"]``."""
    node = resolve(root, node)
    variants = node.get("anyOf")
    if variants is not None:
        rest = [v for v in variants if v != {"type": "null"}]
        assert len(rest) == 1 and len(variants) == 2, node
        inner = resolve(root, rest[0])
        merged = {**inner, **{k: v for k, v in node.items() if k != "anyOf"}}
        merged["type"] = [inner["type"], "null"]
        node = merged
    return {key: node[key] for key in FACETS if key in node}


# --- document and channels ---------------------------------------------------------------------


def test_is_asyncapi_3_0_0_with_the_local_kafka_server(spec: dict[str, Any]) -> None:
    assert spec["asyncapi"] == "3.0.0"
    local = spec["servers"]["local"]
    assert local["protocol"] == "kafka"
    assert local["host"] == "127.0.0.1:9092"


def test_channel_addresses_are_the_topic_names(spec: dict[str, Any]) -> None:
    names = TopicNames()
    channels = spec["channels"]
    assert {key: channel["address"] for key, channel in channels.items()} == {
        "sensorReadings": names.readings,
        "volunteerReports": names.reports,
        "alerts": names.alerts,
        "alertCommands": names.commands,
        "deadLetters": names.dead_letters,
        "cases": names.cases,
    }
    assert {channel["address"] for channel in channels.values()} == set(names.all())


def test_operations_say_who_sends_and_who_receives(spec: dict[str, Any]) -> None:
    names = TopicNames()
    by_role: dict[str, set[tuple[str, str]]] = {}
    for op in spec["operations"].values():
        (role,) = (tag["name"] for tag in op["tags"])
        address = resolve(spec, op["channel"])["address"]
        by_role.setdefault(role, set()).add((op["action"], address))
        for ref in op["messages"]:  # every operation names a message of its own channel
            assert ref["$ref"].startswith(op["channel"]["$ref"] + "/messages/")
            resolve(spec, ref)
    assert by_role["worker"] == {
        ("receive", names.readings),
        ("send", names.readings),  # re-keying a reading not keyed by its zone id
        ("receive", names.reports),
        ("send", names.reports),  # re-keying a report not keyed by its zone id
        ("receive", names.commands),
        ("send", names.commands),  # re-keying a command not keyed by its zone id
        ("send", names.alerts),
        ("send", names.dead_letters),
        ("receive", names.cases),
        ("send", names.cases),  # the overdue check's escalations
    }
    assert by_role["client"] == {
        ("send", names.readings),
        ("send", names.reports),
        ("send", names.commands),  # the control-room API; never straight to the alerts topic
        ("receive", names.alerts),
        ("send", names.cases),  # the HTTP API's case actions
    }


# --- payloads against the pydantic models -------------------------------------------------------


@pytest.mark.parametrize("message", sorted(WIRE_MESSAGES))
def test_payload_fields_match_the_model(spec: dict[str, Any], message: str) -> None:
    channel, model = WIRE_MESSAGES[message]
    schema = payload_schema(spec, message)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(model.model_fields)
    assert set(schema["required"]) == required_fields(model)
    assert len(schema["required"]) == len(set(schema["required"]))
    (on_channel,) = spec["channels"][channel]["messages"].values()
    assert on_channel == {"$ref": f"#/components/messages/{message}"}


@pytest.mark.parametrize("message", sorted(WIRE_MESSAGES))
def test_payload_constraints_match_pydantics_schema(spec: dict[str, Any], message: str) -> None:
    _, model = WIRE_MESSAGES[message]
    generated = model.model_json_schema()
    ours = payload_schema(spec, message)
    for name, prop in generated["properties"].items():
        assert facets(spec, ours["properties"][name]) == facets(generated, prop), name
        assert ours["properties"][name].get("description"), f"{name} has no description"


def test_alert_summary_matches_the_model(spec: dict[str, Any]) -> None:
    summary = resolve(spec, payload_schema(spec, "AlertRecord")["properties"]["summary"])
    assert summary["type"] == "object"
    assert summary["additionalProperties"] is False
    assert list(summary["properties"]) == list(Summary.model_fields)
    assert set(summary["required"]) == required_fields(Summary)


@pytest.mark.parametrize(
    ("message", "field", "enum"),
    [
        ("SensorReading", "kind", SensorKind),
        ("VolunteerReport", "category", ReportCategory),
        ("AlertRecord", "risk", Risk),
        ("AlertRecord", "level", Level),
        ("AlertRecord", "status", AlertStatus),
        ("AlertRecord", "change", Change),
        ("AlertCommand", "action", CommandAction),
    ],
)
def test_enums_match_the_python_enums(
    spec: dict[str, Any], message: str, field: str, enum: type[StrEnum]
) -> None:
    prop = resolve(spec, payload_schema(spec, message)["properties"][field])
    assert prop["type"] == "string"
    assert prop["enum"] == [member.value for member in enum]
    if message.startswith("Alert"):  # each value of an alert's enums is explained beside it
        for member in enum:
            assert f"`{member.value}`" in prop["description"]


def test_value_ranges_per_kind_match_kind_ranges(spec: dict[str, Any]) -> None:
    schema = payload_schema(spec, "SensorReading")
    ranges: dict[str, tuple[float, float, bool]] = {}
    for rule in schema["allOf"]:
        kind = rule["if"]["properties"]["kind"]["const"]
        assert rule["if"]["required"] == ["kind"]
        value = rule["then"]["properties"]["value"]
        assert value.get("multipleOf", 1) == 1
        ranges[kind] = (value["minimum"], value["maximum"], "multipleOf" in value)
    assert ranges == {kind.value: limits for kind, limits in KIND_RANGES.items()}
    for kind in SensorKind:  # the units table names every kind
        assert f"| `{kind.value}` |" in schema["description"]


@pytest.mark.parametrize("message", INPUT_MESSAGES)
def test_input_payloads_state_the_size_limit(spec: dict[str, Any], message: str) -> None:
    assert f"{MAX_RECORD_BYTES:,}".replace(",", " ") in payload_schema(spec, message)["description"]


@pytest.mark.parametrize("message", sorted(set(WIRE_MESSAGES) - {"CaseCommand"}))
def test_wire_messages_are_keyed_by_zone_id(spec: dict[str, Any], message: str) -> None:
    kafka = spec["components"]["messages"][message]["bindings"]["kafka"]
    assert kafka["key"]["type"] == "string"
    assert "zone_id" in kafka["key"]["description"]


def test_case_commands_are_keyed_by_case_id_and_the_examples_decode(spec: dict[str, Any]) -> None:
    message = spec["components"]["messages"]["CaseCommand"]
    assert "case_id" in message["bindings"]["kafka"]["key"]["description"]
    for ex in message["examples"]:
        cmd = decode_case_command(json.dumps(ex["payload"], ensure_ascii=False).encode())
        assert cmd.case_id == ex["payload"]["case_id"]


@pytest.mark.parametrize(
    ("message", "topic"),
    [("SensorReading", "readings"), ("VolunteerReport", "reports"), ("AlertCommand", "commands")],
)
async def test_inputs_keyed_otherwise_are_rekeyed(
    spec: dict[str, Any], message: str, topic: str
) -> None:
    """As the key descriptions say: a valid reading, report or command not keyed by its zone id
    is sent back to its topic, unchanged, keyed by it (and handled then); nothing else happens."""
    assert (
        "re-keyed"
        in spec["components"]["messages"][message]["bindings"]["kafka"]["key"]["description"]
    )
    for ex in spec["components"]["messages"][message]["examples"]:
        raw = json.dumps(ex["payload"], ensure_ascii=False).encode()
        for key in (None, b"some-other-key"):
            dead, other = await handle(raw, Source(getattr(TopicNames(), topic), 0, 0, key))
            assert not dead.sent
            assert other.sent == [(ex["payload"]["zone_id"].encode(), raw, None)]


# --- dead letters --------------------------------------------------------------------------------


def test_dead_letter_headers_match_the_handler(spec: dict[str, Any]) -> None:
    message = spec["components"]["messages"]["DeadLetter"]
    headers = resolve(spec, message["headers"])
    sent = dead_letter_headers(Source("t", 0, 0, None), "too_large", "detail")
    assert headers["type"] == "object"
    assert list(headers["properties"]) == [name for name, _ in sent]
    assert set(headers["required"]) == {name for name, _ in sent}
    reason = headers["properties"]["error.reason"]
    assert set(reason["enum"]) == set(REASONS) | {"internal_error"}
    assert len(reason["enum"]) == len(set(reason["enum"]))
    assert INTERNAL_ERROR == "internal_error"
    for code in reason["enum"]:
        assert f"`{code}`" in reason["description"]


def test_command_outcomes_are_explained(spec: dict[str, Any]) -> None:
    """The outcomes ``apply_command`` reports (and ``puhui_commands_total`` counts)."""
    description = payload_schema(spec, "AlertCommand")["description"]
    for outcome in ("applied", "duplicate", "not_open"):
        assert f"`{outcome}`" in description


class Capture:
    """A fake sender that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]] = []

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.sent.append((key, value, headers))


async def handle(raw: bytes, source: Source) -> tuple[Capture, Capture]:
    """Hand ``raw`` to the worker's handler for ``source.topic``: what it dead-letters, and what
    else it sends (alert records, re-keyed inputs)."""
    names = TopicNames()
    zones = load_bundled_zones()
    rules = RuleBook(default_rules(), {})
    metrics = PipelineMetrics.create(CollectorRegistry())
    states = ZoneStates({})
    dead, other = Capture(), Capture()

    async def store_report(report: VolunteerReport, alert_id: str | None) -> None:
        pass

    if source.topic == names.readings:
        await ReadingHandler(
            zones=zones,
            rules=rules,
            states=states,
            metrics=metrics,
            send_alert=other,
            send_dead_letter=dead,
            send_reading=other,
        )(raw, source)
    elif source.topic == names.reports:
        await ReportHandler(
            zones=zones,
            rules=rules,
            states=states,
            metrics=metrics,
            send_alert=other,
            send_dead_letter=dead,
            send_report=other,
            store_report=store_report,
        )(raw, source)
    else:
        assert source.topic == names.commands
        await CommandHandler(
            zones=zones,
            states=states,
            metrics=metrics,
            send_alert=other,
            send_dead_letter=dead,
            send_command=other,
        )(raw, source)
    return dead, other


async def dead_letters_of(raw: bytes, source: Source) -> Capture:
    """What the worker's handler for ``source.topic`` dead-letters of ``raw`` (nothing else)."""
    dead, other = await handle(raw, source)
    assert not other.sent
    return dead


async def test_dead_letter_examples_are_what_the_worker_would_write(spec: dict[str, Any]) -> None:
    names = TopicNames()
    examples = spec["components"]["messages"]["DeadLetter"]["examples"]
    topics = {ex["headers"]["source.topic"] for ex in examples}
    assert {names.reports, names.commands} <= topics  # dead-lettered like readings
    assert topics <= {names.readings, names.reports, names.commands}
    for example in examples:
        headers = example["headers"]
        raw = example["payload"].encode()
        source = Source(
            headers["source.topic"],
            int(headers["source.partition"]),
            int(headers["source.offset"]),
            b"tianzifang-taikang-248",
        )
        dead = await dead_letters_of(raw, source)
        ((key, value, sent),) = dead.sent
        assert (key, value) == (source.key, raw)
        assert sent is not None
        assert {name: v.decode() for name, v in sent} == headers


# --- examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", sorted(WIRE_MESSAGES))
def test_every_example_validates_against_the_model(spec: dict[str, Any], message: str) -> None:
    _, model = WIRE_MESSAGES[message]
    examples = spec["components"]["messages"][message]["examples"]
    assert examples
    for example in examples:
        model.model_validate(example["payload"])


def test_input_examples_pass_the_workers_checks(spec: dict[str, Any]) -> None:
    """Beyond the model: a known zone, and a value possible for its kind."""
    zones = load_bundled_zones()
    zone_ids = zones.ids()
    messages = spec["components"]["messages"]
    for example in messages["SensorReading"]["examples"]:
        decode_reading(
            SensorReading.model_validate(example["payload"]).model_dump_json().encode(), zone_ids
        )
    for example in messages["VolunteerReport"]["examples"]:
        decode_report(
            VolunteerReport.model_validate(example["payload"]).model_dump_json().encode(), zone_ids
        )
    for example in messages["AlertCommand"]["examples"]:
        command = decode_command(AlertCommand.model_validate(example["payload"]).to_bytes())
        assert command.zone_id in zones
        assert command.command_id.startswith("cmd-")  # cannot equal a report id (see below)


# --- the example zone's story: the alert examples are what the engine writes ---------------------

ZONE = "tianzifang-taikang-248"
CAMERA = "cam-248-01"
RULES = default_rules()

#: What happens in the example zone on 2024-10-02: ``(Beijing time, people counted by
#: cam-248-01)`` is a reading; a name is the VolunteerReport or AlertCommand example of that name.
#: The alert records the engine writes for it are the AlertRecord examples, in order.
STORY: list[tuple[str, int] | str] = [
    ("15:13", 500),  # about 35 more people a minute ...
    ("15:14", 540),
    ("15:15", 568),
    ("15:16", 612),
    ("15:17", 640),
    ("15:18", 684),
    ("15:19", 712),
    ("15:20", 750),  # ... 8 minutes of trend: orange expected within 15 min, predicted 黄
    ("15:21", 790),
    ("15:22", 815),
    ("15:23", 858),
    ("15:24", 884),
    ("15:25", 925),
    ("15:26", 950),
    ("15:27", 990),  # occupancy 92 %: 黄 reached, the prediction confirmed
    ("15:28", 1030),
    ("15:29", 1075),
    ("15:30", 1152),  # above capacity: 橙 (the SensorReading example peopleCount)
    ("15:31", 1230),
    "crowdingReport",  # a volunteer's crowding report joins the alert: corroborated
    ("15:32", 1512),  # 红
    ("15:33", 1480),
    "acknowledge",
    ("15:34", 1420),
    "assign",
    ("15:35", 1330),
    "blockedFireLane",  # opens a report alert, inhibited: the 红 crowd explains it
    ("15:36", 1240),  # 橙 from here; after the hold time (15:41) de-escalated to 橙
    ("15:37", 1180),
    ("15:38", 1150),
    ("15:39", 1120),
    ("15:40", 1100),
    ("15:41", 1090),
    ("15:42", 690),  # clear from here; after the hold time (15:47) resolved
    ("15:43", 650),
    ("15:44", 640),
    ("15:45", 620),
    ("15:46", 610),
    ("15:47", 600),
]

#: The keys any alert's evidence may have, beside those of its risk; and those a report joining
#: a sensor alert adds (``reports`` and ``reporters`` are also a report alert's own).
COMMON_EVIDENCE = {"inhibited_by", "clear_seconds"}
CORROBORATION = {"corroborated", "reports", "reporters", "report_count", "reporter_count"}
FORECAST_EVIDENCE = {
    "target_level",
    "target_density",
    "expected_at",
    "minutes",
    "rate_per_min",
    "fitted_density",
    "window_minutes",
}

#: An input of the engine; a datetime is a silence sweep (the partition's event-time watermark
#: reaching that moment).
Item = SensorReading | VolunteerReport | AlertCommand | datetime
#: Alert records with what caused each: "reading", "report", "command" or "sweep".
Caused = list[tuple[str, AlertRecord]]


def zone_of(zone_id: str = ZONE) -> Zone:
    zone = load_bundled_zones().get(zone_id)
    assert zone is not None
    return zone


def people(at: str, count: int) -> SensorReading:
    observed = f"2024-10-02T{at}:00+08:00"
    return SensorReading.model_validate(
        {
            "reading_id": f"{CAMERA}:{observed}",
            "sensor_id": CAMERA,
            "zone_id": ZONE,
            "kind": "people_count",
            "value": count,
            "observed_at": observed,
        }
    )


#: Start of the other runs below (after the story, same zone, fresh state).
T0 = datetime(2024, 10, 2, 16, 0, tzinfo=timezone(timedelta(hours=8)))


def sensor(sensor_id: str, kind: SensorKind, value: float, minute: float) -> SensorReading:
    at = T0 + timedelta(minutes=minute)
    return SensorReading(
        reading_id=f"{sensor_id}:{at.isoformat()}",
        sensor_id=sensor_id,
        zone_id=ZONE,
        kind=kind,
        value=value,
        observed_at=at,
    )


def report(report_id: str, reporter: str, category: str, minute: float) -> VolunteerReport:
    return VolunteerReport(
        report_id=report_id,
        reporter_id=reporter,
        zone_id=ZONE,
        category=ReportCategory(category),
        description="看到了 / seen",
        submitted_at=T0 + timedelta(minutes=minute),
    )


def sweep(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def example(spec: dict[str, Any], message: str, name: str) -> dict[str, Any]:
    (payload,) = [
        ex["payload"]
        for ex in spec["components"]["messages"][message]["examples"]
        if ex["name"] == name
    ]
    return payload


def command_example(spec: dict[str, Any], name: str) -> AlertCommand:
    return AlertCommand.model_validate(example(spec, "AlertCommand", name))


def story_items(spec: dict[str, Any], steps: list[tuple[str, int] | str]) -> list[Item]:
    names = {
        ex["name"]: message
        for message in ("VolunteerReport", "AlertCommand")
        for ex in spec["components"]["messages"][message]["examples"]
    }
    items: list[Item] = []
    for step in steps:
        if isinstance(step, tuple):
            items.append(people(*step))
        elif names[step] == "VolunteerReport":
            items.append(VolunteerReport.model_validate(example(spec, "VolunteerReport", step)))
        else:
            items.append(command_example(spec, step))
    return items


def run(items: list[Item], state: ZoneState | None = None) -> tuple[ZoneState, Caused]:
    """Feed ``items`` to the engine as the worker would; the records it writes, by cause."""
    zone = zone_of()
    state = state or ZoneState(ZONE)
    out: Caused = []
    for item in items:
        if isinstance(item, SensorReading):
            out += [("reading", r) for r in process_reading(state, item, zone, RULES).records]
        elif isinstance(item, VolunteerReport):
            out += [("report", r) for r in process_report(state, item, zone, RULES).records]
        elif isinstance(item, AlertCommand):
            outcome = apply_command(state, item)
            assert outcome.outcome == "applied", item
            assert outcome.record is not None
            out.append(("command", outcome.record))
        else:
            swept = check_silence(state, zone, RULES, item.timestamp())
            out += [("sweep", r) for r in swept.records]
    return state, out


def replay(
    spec: dict[str, Any], steps: list[tuple[str, int] | str]
) -> tuple[ZoneState, list[AlertRecord]]:
    state, caused = run(story_items(spec, steps))
    return state, [record for _, record in caused]


def story_before(moment: datetime) -> list[tuple[str, int] | str]:
    """The story up to its first reading at or after ``moment``."""
    for i, step in enumerate(STORY):
        if isinstance(step, tuple) and people(*step).observed_at >= moment:
            return STORY[:i]
    return STORY


def other_runs() -> Caused:
    """Runs beside the story, so every risk and every cause of every change is seen."""
    caused: Caused = []
    # a gas alert lowered and resolved by silence sweeps; the silent detector goes offline
    caused += run(
        [
            sensor("lel-1", SensorKind.GAS_LEL, 30, 0),  # 橙
            sensor("lel-1", SensorKind.GAS_LEL, 12, 1),  # 黄: the hold time starts
            sweep(6),  # de-escalated to 黄; lel-1 silent for 5 min: sensor_offline
            sensor("lel-1", SensorKind.GAS_LEL, 0, 7),  # back: sensor_offline resolved; clear
            sensor("hb-1", SensorKind.HEARTBEAT, 1, 7),
            sweep(12.5),  # gas clear for the hold time: resolved
        ]
    )[1]
    # a smoke alarm confirmed by a fire report: 红, and the report corroborates it
    caused += run(
        [
            sensor("smk-1", SensorKind.SMOKE, 1, 0),
            report("rep-f1", "vol-1", "fire", 0),
            sensor("smk-2", SensorKind.SMOKE, 1, 1),
        ]
    )[1]
    # three reporters raise a report alert one level
    caused += run(
        [
            sensor("hb-1", SensorKind.HEARTBEAT, 1, 5),
            report("rep-l1", "vol-1", "littering", 1),
            report("rep-l2", "vol-1", "littering", 2),
            report("rep-l3", "vol-2", "littering", 3),
            report("rep-l4", "vol-3", "littering", 4),
        ]
    )[1]
    # each sensor kind on its own, at its highest value, twice (duration rules need time)
    for kind in SensorKind:
        high = KIND_RANGES[kind][1]
        caused += run([sensor("s-1", kind, high, 0), sensor("s-1", kind, high, 6)])[1]
    return caused


#: AlertRecord examples that are not part of the story but of an alternative it describes.
ALTERNATIVES = {"reopened"}


def reopen_alternative(spec: dict[str, Any]) -> Caused:
    """The story until 15:34:30, the resolve example sent then (no note) while the lane is still
    红, and the 15:35 reading."""
    early = command_example(spec, "resolve").model_copy(
        update={
            "command_id": "cmd-20241002-0419",
            "issued_at": datetime.fromisoformat("2024-10-02T15:34:30+08:00"),
            "note": None,
        }
    )
    items = story_items(spec, story_before(early.issued_at))
    return run([*items, early, people("15:35", 1330)])[1]


def test_alert_examples_are_what_the_engine_writes(spec: dict[str, Any]) -> None:
    examples = spec["components"]["messages"]["AlertRecord"]["examples"]
    payloads = [ex["payload"] for ex in examples if ex["name"] not in ALTERNATIVES]
    _, records = replay(spec, STORY)
    assert [r.model_dump(mode="json") for r in records] == payloads
    (reopened,) = [ex["payload"] for ex in examples if ex["name"] == "reopened"]
    assert reopen_alternative(spec)[-1][1].model_dump(mode="json") == reopened


def test_resolving_a_live_condition_reopens_the_same_alert(spec: dict[str, Any]) -> None:
    caused = reopen_alternative(spec)
    (_, resolved), (cause, reopened) = caused[-2:]
    assert (resolved.change, resolved.actor) == (Change.RESOLVED, "op-dapuqiao-li")
    assert cause == "reading" and reopened.change == Change.REOPENED
    assert reopened.alert_id == resolved.alert_id
    assert reopened.revision == resolved.revision + 1
    assert reopened.status == AlertStatus.FIRING and reopened.acknowledged_by is None
    assert len({r.alert_id for _, r in caused if r.risk == Risk.CROWDING}) == 1


def test_alert_examples_have_every_field_as_written(spec: dict[str, Any]) -> None:
    """As the worker writes them: every field present, optional ones included."""
    for ex in spec["components"]["messages"]["AlertRecord"]["examples"]:
        payload = ex["payload"]
        assert AlertRecord.model_validate(payload).model_dump(mode="json") == payload
        assert list(payload) == list(AlertRecord.model_fields)


def test_alert_examples_show_every_change_and_flag(spec: dict[str, Any]) -> None:
    records = [
        AlertRecord.model_validate(ex["payload"])
        for ex in spec["components"]["messages"]["AlertRecord"]["examples"]
    ]
    assert {r.change for r in records} == set(Change)
    assert {r.predicted for r in records} == {True, False}
    assert {r.inhibited for r in records} == {True, False}
    assert {r.risk for r in records} == {Risk.CROWDING, Risk.REPORT}
    assert {r.status for r in records} == set(AlertStatus)


def test_the_crowding_alerts_life(spec: dict[str, Any]) -> None:
    """One alert_id, revisions 1, 2, 3 …: predicted, confirmed, escalated, corroborated,
    acknowledged, assigned, de-escalated and resolved by the hold time."""
    _, records = replay(spec, STORY)
    life = [r for r in records if r.risk == Risk.CROWDING]
    assert [r.revision for r in life] == list(range(1, len(life) + 1))
    assert len({r.alert_id for r in life}) == 1
    assert len({r.opened_at for r in life}) == 1
    first = life[0]
    assert first.alert_id == alert_id_for(
        first.zone_id, first.risk, str(first.evidence["reading_id"])
    )
    # predicted: raised at the forecast's level, with the forecast
    assert (first.change, first.predicted, first.level) == (Change.RAISED, True, Level.YELLOW)
    forecast = first.evidence["forecast"]
    assert isinstance(forecast, dict) and set(forecast) == FORECAST_EVIDENCE
    assert forecast["target_level"] == Level.ORANGE.value
    # confirmed: the same level, now observed
    (confirmed,) = [r for r in life if r.change == Change.CONFIRMED]
    assert (confirmed.level, confirmed.predicted) == (first.level, False)
    assert all(not r.predicted for r in life[1:])
    # the expected crossing came true: orange was reached after the forecast, within its horizon
    (orange,) = [r for r in life if r.change == Change.ESCALATED and r.level == Level.ORANGE]
    assert first.at < datetime.fromisoformat(str(forecast["expected_at"])) <= orange.at
    # corroborated: the report's id and reporter join the evidence and stay there
    (corr,) = [r for r in life if r.change == Change.CORROBORATED]
    crowding_report = VolunteerReport.model_validate(
        example(spec, "VolunteerReport", "crowdingReport")
    )
    assert corr.at == crowding_report.submitted_at
    assert (corr.level, corr.status) == (orange.level, orange.status)
    assert corr.evidence["corroborated"] is True
    assert corr.evidence["reports"] == [crowding_report.report_id]
    assert corr.evidence["reporters"] == [crowding_report.reporter_id]
    for later in life[life.index(corr) :]:
        assert later.evidence["reports"] == [crowding_report.report_id]
    # operators' changes, then de-escalated after the hold time, then resolved by it
    assert {Change.ACKNOWLEDGED, Change.ASSIGNED} <= {r.change for r in life}
    (down,) = [r for r in life if r.change == Change.DEESCALATED]
    assert down.level == Level.ORANGE and down.status == AlertStatus.ACKNOWLEDGED
    last = life[-1]
    assert last.change == Change.RESOLVED and last.actor is None
    assert last.evidence["clear_seconds"] == RULES.hold.total_seconds()
    assert last.summary.zh.startswith("已解除：") and last.summary.en.startswith("Resolved: ")
    assert last.assignee is not None


def test_the_inhibited_example(spec: dict[str, Any]) -> None:
    """A report raised while the 红 crowding alert explains it: recorded, marked inhibited."""
    _, records = replay(spec, STORY)
    (inhibited,) = [r for r in records if r.inhibited]
    fire_lane = VolunteerReport.model_validate(example(spec, "VolunteerReport", "blockedFireLane"))
    assert (inhibited.risk, inhibited.change) == (Risk.REPORT, Change.RAISED)
    assert inhibited.alert_id == alert_id_for(ZONE, Risk.REPORT, fire_lane.report_id)
    assert inhibited.at == fire_lane.submitted_at
    assert inhibited.evidence["reports"] == [fire_lane.report_id]
    assert inhibited.evidence["category"] == fire_lane.category.value
    before = records[: records.index(inhibited)]
    crowding = [r for r in before if r.risk == Risk.CROWDING][-1]
    assert crowding.level == Level.RED
    assert inhibited.evidence["inhibited_by"] == crowding.alert_id
    assert Risk.REPORT.value in RULES.inhibit[Risk.CROWDING]


def test_command_examples_name_the_example_alert(spec: dict[str, Any]) -> None:
    """Every action has an example, and each acts on the alert of the AlertRecord examples."""
    alert = spec["components"]["messages"]["AlertRecord"]["examples"][0]["payload"]
    examples = spec["components"]["messages"]["AlertCommand"]["examples"]
    commands = [AlertCommand.model_validate(ex["payload"]) for ex in examples]
    assert [c.action for c in commands] == list(CommandAction)
    assert [ex["name"] for ex in examples] == [c.action.value for c in commands]
    for command in commands:
        assert (command.alert_id, command.zone_id) == (alert["alert_id"], alert["zone_id"])


def test_revisions_the_summaries_state_are_right(spec: dict[str, Any]) -> None:
    messages = spec["components"]["messages"]
    for ex in messages["AlertRecord"]["examples"]:
        for stated in re.findall(r"revision (\d+)", ex["summary"]):
            assert int(stated) == ex["payload"]["revision"], ex["name"]
    resolve = command_example(spec, "resolve")
    _, records = replay(spec, [*story_before(resolve.issued_at), "resolve"])
    action = {
        Change.ACKNOWLEDGED: "acknowledge",
        Change.ASSIGNED: "assign",
        Change.RESOLVED: "resolve",
    }
    by_command = {action[r.change]: r.revision for r in records if r.actor}
    for ex in messages["AlertCommand"]["examples"]:
        assert f"(revision {by_command[ex['name']]})" in ex["summary"], ex["name"]


def test_people_count_example_is_part_of_the_story(spec: dict[str, Any]) -> None:
    assert people("15:30", 1152).model_dump(mode="json") == SensorReading.model_validate(
        example(spec, "SensorReading", "peopleCount")
    ).model_dump(mode="json")
    assert ("15:30", 1152) in STORY


def test_resolve_example_is_an_operators_resolve(spec: dict[str, Any]) -> None:
    """The resolve example, as its summary tells: sent while the alert is open it closes it
    with the operator's actor and note; once the alert has resolved, it changes nothing."""
    command = command_example(spec, "resolve")
    state, records = replay(spec, [*story_before(command.issued_at), "resolve"])
    last = records[-1]
    assert (last.change, last.status, last.revision) == (
        Change.RESOLVED,
        AlertStatus.RESOLVED,
        [r for r in records if r.risk == Risk.CROWDING][-2].revision + 1,
    )
    assert (last.actor, last.note, last.at) == (command.actor, command.note, command.issued_at)
    assert "clear_seconds" not in last.evidence
    assert Risk.CROWDING.value not in state.alerts
    assert apply_command(state, command).outcome == "duplicate"

    state, _ = replay(spec, STORY)
    assert apply_command(state, command).outcome == "not_open"


# --- the rules the contract states in prose ------------------------------------------------------


def code_table(description: str) -> dict[str, set[str]]:
    """The rows of the Markdown tables in ``description`` whose first cell is one `code` value:
    that value -> the `code` values of the row's last cell, outside parentheses (asides)."""
    rows: dict[str, set[str]] = {}
    for line in description.splitlines():
        match = re.fullmatch(r"\| `([a-z_]+)` \|(.*)\|", line.strip())
        if match:
            assert match[1] not in rows, match[1]
            cell = re.sub(r"\([^)]*\)", "", match[2].split("|")[-1])
            rows[match[1]] = set(re.findall(r"`([^`]+)`", cell))
    return rows


def test_changes_are_caused_as_documented(spec: dict[str, Any]) -> None:
    """The ``change`` table says which input causes which change: exactly what the engine does
    over the story, the resolve alternative and the other runs."""
    documented = code_table(
        payload_schema(spec, "AlertRecord")["properties"]["change"]["description"]
    )
    assert set(documented) == {c.value for c in Change}
    _, story = run(story_items(spec, STORY))
    command = command_example(spec, "resolve")
    _, alternative = run(story_items(spec, [*story_before(command.issued_at), "resolve"]))
    seen: dict[str, set[str]] = {c.value: set() for c in Change}
    for cause, record in [*story, *alternative, *reopen_alternative(spec), *other_runs()]:
        seen[record.change.value].add(cause)
    assert seen == documented


def test_evidence_is_as_documented(spec: dict[str, Any]) -> None:
    """The ``evidence`` table names every key each risk's evidence has, and no other."""
    description = payload_schema(spec, "AlertRecord")["properties"]["evidence"]["description"]
    documented = code_table(description)
    assert set(documented) == {r.value for r in Risk}
    for key in COMMON_EVIDENCE | CORROBORATION | FORECAST_EVIDENCE:
        assert f"`{key}`" in description, key
    _, story = run(story_items(spec, STORY))
    seen: dict[str, set[str]] = {r.value: set() for r in Risk}
    for _, record in [*story, *other_runs()]:
        keys = set(record.evidence) - COMMON_EVIDENCE
        if record.evidence.get("corroborated") is True:
            assert record.risk != Risk.REPORT and record.evidence.keys() >= CORROBORATION
            keys -= CORROBORATION
        seen[record.risk.value] |= keys
        if "forecast" in record.evidence:
            forecast = record.evidence["forecast"]
            assert isinstance(forecast, dict) and set(forecast) == FORECAST_EVIDENCE
    assert seen == documented


def test_kinds_drive_the_documented_risks(spec: dict[str, Any]) -> None:
    """The units table's last column: the risk each kind drives (its silence drives
    sensor_offline, whatever the kind)."""
    documented = code_table(payload_schema(spec, "SensorReading")["description"])
    assert set(documented) == {k.value for k in SensorKind}
    zone = zone_of()
    for kind in SensorKind:
        state = ZoneState(ZONE)
        driven: set[str] = set()
        high = KIND_RANGES[kind][1]
        for minute in (0, 6):
            step = process_reading(state, sensor("s-1", kind, high, minute), zone, RULES)
            driven |= {r.risk.value for r in step.records}
            if step.view is not None:  # counted into the zone's crowd
                driven.add(Risk.CROWDING.value)
        assert driven == documented[kind.value], kind
    silent = run(
        [sensor("s-1", SensorKind.HEARTBEAT, 1, 0), sensor("s-2", SensorKind.HEARTBEAT, 1, 4)]
    )
    assert [(r.risk, r.change) for _, r in silent[1]] == [(Risk.SENSOR_OFFLINE, Change.RAISED)]


def test_a_reading_no_newer_than_its_sensors_latest_is_inert(spec: dict[str, Any]) -> None:
    """Readings are de-duplicated by sensor and ``observed_at``: a repeat (same ``reading_id``,
    so the same ``observed_at``) changes nothing, nor does any reading older than the sensor's
    latest — whatever its id or value."""
    zone = zone_of()
    reading = SensorReading.model_validate(example(spec, "SensorReading", "peopleCount"))
    state = ZoneState(ZONE)
    assert process_reading(state, reading, zone, RULES).records  # orange
    before = state.to_dict()
    later = reading.observed_at
    for repeat in (
        reading,
        reading.model_copy(update={"reading_id": "other-id", "value": 5000.0}),
        reading.model_copy(
            update={"reading_id": "older", "observed_at": later - timedelta(minutes=1)}
        ),
    ):
        step = process_reading(state, repeat, zone, RULES)
        assert step.duplicate and not step.records
        assert state.to_dict() == before


def test_a_report_ahead_of_its_zones_readings_waits_for_them() -> None:
    """A report is handled once the zone's sensors (or the watermark) reach its time."""
    state, caused = run(
        [sensor("hb-1", SensorKind.HEARTBEAT, 1, 0), report("rep-1", "vol-1", "injury", 1)]
    )
    assert caused == []
    _, caused = run([sensor("hb-1", SensorKind.HEARTBEAT, 1, 2)], state)
    assert [(r.risk, r.change, r.at) for _, r in caused] == [
        (Risk.REPORT, Change.RAISED, T0 + timedelta(minutes=1))
    ]


def test_report_and_command_ids_cannot_collide(spec: dict[str, Any]) -> None:
    """Report ids and command ids share one memory per zone: they must not collide."""
    reports = spec["components"]["messages"]["VolunteerReport"]["examples"]
    commands = spec["components"]["messages"]["AlertCommand"]["examples"]
    assert all(ex["payload"]["report_id"].startswith("rep-") for ex in reports)
    assert all(ex["payload"]["command_id"].startswith("cmd-") for ex in commands)
