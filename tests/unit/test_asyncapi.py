"""The AsyncAPI contract (``docs/asyncapi.yaml``) says what the code does: the topic names, the
wire models' fields, constraints and enums, the dead-letter headers, and examples that decode —
the alert records being what the engine writes for the example readings and commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from alerts.config import RuleBook, default_rules
from alerts.engine import ZoneState, apply_command, process_reading
from alerts.state import alert_id_for
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
from models.zones import load_bundled_zones
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
from streams.topics import TopicNames

pytestmark = pytest.mark.unit

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"

#: message name in components.messages -> (channel id, pydantic model)
WIRE_MESSAGES: dict[str, tuple[str, type[BaseModel]]] = {
    "SensorReading": ("sensorReadings", SensorReading),
    "VolunteerReport": ("volunteerReports", VolunteerReport),
    "AlertRecord": ("alerts", AlertRecord),
    "AlertCommand": ("alertCommands", AlertCommand),
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
        ("receive", names.commands),
        ("send", names.alerts),
        ("send", names.dead_letters),
    }
    assert by_role["client"] == {
        ("send", names.readings),
        ("send", names.reports),
        ("send", names.commands),  # the control-room API; never straight to the alerts topic
        ("receive", names.alerts),
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


@pytest.mark.parametrize("message", sorted(WIRE_MESSAGES))
def test_wire_messages_are_keyed_by_zone_id(spec: dict[str, Any], message: str) -> None:
    kafka = spec["components"]["messages"][message]["bindings"]["kafka"]
    assert kafka["key"]["type"] == "string"
    assert "zone_id" in kafka["key"]["description"]


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


async def dead_letters_of(raw: bytes, source: Source) -> Capture:
    """Hand ``raw`` to the worker's handler for ``source.topic``; what it dead-letters."""
    names = TopicNames()
    zones = load_bundled_zones()
    metrics = PipelineMetrics.create(CollectorRegistry())
    states = ZoneStates({})
    dead, other = Capture(), Capture()
    if source.topic == names.readings:
        await ReadingHandler(
            zones=zones,
            rules=RuleBook(default_rules(), {}),
            states=states,
            metrics=metrics,
            send_alert=other,
            send_dead_letter=dead,
            send_reading=other,
        )(raw, source)
    elif source.topic == names.reports:
        await ReportHandler(zones=zones, metrics=metrics, send_dead_letter=dead)(raw, source)
    else:
        assert source.topic == names.commands
        await CommandHandler(
            zones=zones, states=states, metrics=metrics, send_alert=other, send_dead_letter=dead
        )(raw, source)
    assert not other.sent
    return dead


async def test_dead_letter_examples_are_what_the_worker_would_write(spec: dict[str, Any]) -> None:
    names = TopicNames()
    examples = spec["components"]["messages"]["DeadLetter"]["examples"]
    topics = {ex["headers"]["source.topic"] for ex in examples}
    assert names.commands in topics  # commands are dead-lettered like readings
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
        assert command.command_id.startswith("cmd-")  # cannot equal a reading id


#: What happens in the example alert's zone: (Beijing time, people counted by ``cam-248-01``) is a
#: reading; a name is the AlertCommand example of that name. The alert records it produces are
#: the AlertRecord examples, in order.
ZONE = "tianzifang-taikang-248"
ALERT_LIFE: list[tuple[str, int] | str] = [
    ("15:30", 1152),  # orange: above capacity (the SensorReading example peopleCount)
    ("15:32", 1512),  # red
    "acknowledge",
    "assign",
    ("15:40", 640),  # clear: the hold time starts
    ("15:45", 610),  # clear for 5 minutes: resolved
]


def people(at: str, count: int) -> SensorReading:
    observed = f"2024-10-02T{at}:00+08:00"
    return SensorReading.model_validate(
        {
            "reading_id": f"cam-248-01:{observed}",
            "sensor_id": "cam-248-01",
            "zone_id": ZONE,
            "kind": "people_count",
            "value": count,
            "observed_at": observed,
        }
    )


def command_example(spec: dict[str, Any], name: str) -> AlertCommand:
    (payload,) = [
        ex["payload"]
        for ex in spec["components"]["messages"]["AlertCommand"]["examples"]
        if ex["name"] == name
    ]
    return AlertCommand.model_validate(payload)


def replay(
    spec: dict[str, Any], steps: list[tuple[str, int] | str]
) -> tuple[ZoneState, list[AlertRecord]]:
    """Run the engine over ``steps`` as the worker would; the alert records it writes."""
    zone = load_bundled_zones().get(ZONE)
    assert zone is not None
    state = ZoneState(ZONE)
    records: list[AlertRecord] = []
    for step in steps:
        if isinstance(step, str):
            outcome = apply_command(state, command_example(spec, step))
            assert outcome.outcome == "applied", step
            assert outcome.record is not None
            records.append(outcome.record)
        else:
            records.extend(process_reading(state, people(*step), zone, default_rules()).records)
    return state, records


def test_alert_examples_are_what_the_engine_writes(spec: dict[str, Any]) -> None:
    payloads = [ex["payload"] for ex in spec["components"]["messages"]["AlertRecord"]["examples"]]
    _, records = replay(spec, ALERT_LIFE)
    assert [r.model_dump(mode="json") for r in records] == payloads


def test_alert_examples_are_one_alerts_life(spec: dict[str, Any]) -> None:
    """As the worker writes them: every field present, one alert_id, revisions 1, 2, 3 …"""
    payloads = [ex["payload"] for ex in spec["components"]["messages"]["AlertRecord"]["examples"]]
    records = [AlertRecord.model_validate(p) for p in payloads]
    for payload, record in zip(payloads, records, strict=True):
        assert record.model_dump(mode="json") == payload
    assert [r.revision for r in records] == list(range(1, len(records) + 1))
    assert len({r.alert_id for r in records}) == 1
    assert len({r.opened_at for r in records}) == 1
    assert records[0].change == Change.RAISED
    first = records[0]
    assert first.alert_id == alert_id_for(
        first.zone_id, first.risk, str(first.evidence["reading_id"])
    )
    # every change a command causes is shown, and the life ends with a resolve by the hold time
    assert {Change.ACKNOWLEDGED, Change.ASSIGNED} <= {r.change for r in records}
    last = records[-1]
    assert last.change == Change.RESOLVED and last.actor is None
    assert "clear_seconds" in last.evidence
    assert last.summary.zh.startswith("已解除：") and last.summary.en.startswith("Resolved: ")
    assert last.assignee is not None


def test_command_examples_name_the_example_alert(spec: dict[str, Any]) -> None:
    """Every action has an example, and each acts on the alert of the AlertRecord examples."""
    alert = spec["components"]["messages"]["AlertRecord"]["examples"][0]["payload"]
    examples = spec["components"]["messages"]["AlertCommand"]["examples"]
    commands = [AlertCommand.model_validate(ex["payload"]) for ex in examples]
    assert [c.action for c in commands] == list(CommandAction)
    assert [ex["name"] for ex in examples] == [c.action.value for c in commands]
    for command in commands:
        assert (command.alert_id, command.zone_id) == (alert["alert_id"], alert["zone_id"])


def test_resolve_example_is_an_operators_resolve(spec: dict[str, Any]) -> None:
    """The resolve example, as its summary tells: sent while the alert is open it closes it
    with the operator's actor and note; once the alert has resolved, it changes nothing."""
    before_hold_resolve = ALERT_LIFE[:-1]
    state, records = replay(spec, [*before_hold_resolve, "resolve"])
    command = command_example(spec, "resolve")
    last = records[-1]
    assert (last.change, last.status, last.revision) == (
        Change.RESOLVED,
        AlertStatus.RESOLVED,
        records[-2].revision + 1,
    )
    assert (last.actor, last.note, last.at) == (command.actor, command.note, command.issued_at)
    assert not state.alerts
    assert apply_command(state, command).outcome == "duplicate"

    state, _ = replay(spec, ALERT_LIFE)
    assert apply_command(state, command).outcome == "not_open"
