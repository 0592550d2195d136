"""docker-compose.yml stays honest: same Kafka version, settings, ports and files as the project.

No Docker engine runs here, so the file's structure is checked instead of running it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from infra.broker import KAFKA_VERSION
from infra.settings import Settings

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROMETHEUS_FILE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
ALERTMANAGER_FILE = REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml"
PUHUI_SERVICES = ("worker", "api", "simulator")
SETTINGS_ENV_NAMES = frozenset("PUHUI_" + name.upper() for name in Settings.model_fields)


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    assert isinstance(cmd, list), f"no command: {service}"
    return [str(part) for part in cmd]


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Published ports as {host port: container port} (short syntax, optional host IP)."""
    result: dict[int, int] = {}
    for entry in service.get("ports", []):
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"port {entry!r} is not published on the host"
        result[int(parts[-2])] = int(parts[-1])
    return result


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    result: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def image_tag(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = str(service["image"]).rpartition(":")
    return name, tag


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "kafka",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
        "worker",
        "api",
        "simulator",
    }
    assert expected <= services.keys()


def test_kafka_image_is_the_pinned_version(services: dict[str, dict[str, Any]]) -> None:
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", services["kafka"]["image"])
    assert image_tag(services["kafka"]) == ("apache/kafka", KAFKA_VERSION)


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node_id = env["KAFKA_NODE_ID"]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    voter_id, _, voter_address = voters.partition("@")
    assert voter_id == node_id
    bound = listeners(env["KAFKA_LISTENERS"])
    assert controller in bound
    assert voter_address == f"kafka:{bound[controller][1]}"
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(bound) <= protocols.keys()
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[name] == "1", name
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in services["kafka"]


def test_kafka_listeners_serve_containers_and_host(services: dict[str, dict[str, Any]]) -> None:
    """Containers get ``kafka:9092`` back from metadata, the host ``localhost:9092``."""
    env = environment(services["kafka"])
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    by_address = {address: name for name, address in advertised.items()}

    internal = by_address[("kafka", 9092)]
    assert bound[internal][1] == 9092
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == internal

    external = by_address[("localhost", 9092)]
    assert published_ports(services["kafka"])[9092] == bound[external][1]

    for name in PUHUI_SERVICES:
        assert environment(services[name])["PUHUI_KAFKA_BOOTSTRAP"] == "kafka:9092", name


def test_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert image_tag(postgres) == ("postgres", "15")
    env = environment(postgres)
    assert env["POSTGRES_USER"] == env["POSTGRES_PASSWORD"] == env["POSTGRES_DB"] == "puhui"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(str(volume).endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])

    for name in PUHUI_SERVICES:
        url = urlsplit(environment(services[name])["PUHUI_DATABASE_URL"])
        assert url.scheme == "postgresql+psycopg", name
        assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
        assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/" + env["POSTGRES_DB"])


@pytest.mark.parametrize("name", PUHUI_SERVICES)
def test_environment_names_are_settings_fields(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    assert env, f"{name} has no environment"
    assert all(key.startswith("PUHUI_") for key in env), sorted(env)
    assert set(env) <= SETTINGS_ENV_NAMES, sorted(set(env) - SETTINGS_ENV_NAMES)
    assert env["PUHUI_STATE_DIR"] == "/var/lib/puhui"


@pytest.mark.parametrize(
    ("name", "cmd"),
    [
        ("worker", ["puhui", "worker"]),
        ("api", ["puhui", "api"]),
        ("simulator", ["puhui", "simulate"]),
    ],
)
def test_puhui_services_use_the_project_image(
    services: dict[str, dict[str, Any]], name: str, cmd: list[str]
) -> None:
    service = services[name]
    assert command(service) == cmd
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (REPO_ROOT / context / dockerfile).is_file()
    assert "profiles" not in service or name == "simulator"


def test_dockerfile_runs_the_worker_by_default() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    assert 'CMD ["puhui", "worker"]' in text


def test_simulator_is_a_demo_profile(services: dict[str, dict[str, Any]]) -> None:
    assert services["simulator"]["profiles"] == ["demo"]


@pytest.mark.parametrize("name", ["worker", "api"])
def test_worker_and_api_wait_for_healthy_dependencies(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    for dependency in ("kafka", "postgres"):
        assert depends_on[dependency]["condition"] == "service_healthy", dependency
        assert "healthcheck" in services[dependency]


@pytest.mark.parametrize(
    ("name", "port_var", "host_var"),
    [
        ("worker", "PUHUI_WORKER_PORT", "PUHUI_WORKER_HOST"),
        ("api", "PUHUI_HTTP_PORT", "PUHUI_HTTP_HOST"),
    ],
)
def test_published_ports_match_settings(
    services: dict[str, dict[str, Any]], name: str, port_var: str, host_var: str
) -> None:
    env = environment(services[name])
    port = int(env[port_var])
    assert published_ports(services[name]) == {port: port}
    # The settings default (127.0.0.1) would be unreachable from the host and from Prometheus.
    assert env[host_var] == "0.0.0.0"


def test_prometheus_mounts_exist_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert image_tag(prometheus) == ("prom/prometheus", "v2.42.0")
    assert published_ports(prometheus) == {9090: 9090}
    mounts: dict[str, Path] = {}
    for volume in prometheus["volumes"]:
        source, target, *options = str(volume).split(":")
        assert source.startswith("./"), volume
        assert options == ["ro"], f"{volume} is not read-only"
        mounts[target] = REPO_ROOT / source
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_FILE
    assert mounts["/etc/prometheus/prometheus.yml"].is_file()
    assert mounts["/etc/prometheus/rules"] == REPO_ROOT / "infra" / "prometheus" / "rules"
    assert mounts["/etc/prometheus/rules"].is_dir()
    rule_files = sorted(mounts["/etc/prometheus/rules"].glob("*.yml"))
    assert rule_files, "the rules mount holds no rule files"
    assert all("groups" in load_yaml(path) for path in rule_files), rule_files


def test_prometheus_scrapes_worker_and_api(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(PROMETHEUS_FILE)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker_port = environment(services["worker"])["PUHUI_WORKER_PORT"]
    api_port = environment(services["api"])["PUHUI_HTTP_PORT"]
    for job_name, target in (
        ("puhui-worker", f"worker:{worker_port}"),
        ("puhui-api", f"api:{api_port}"),
    ):
        job = jobs[job_name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert [t for group in job["static_configs"] for t in group["targets"]] == [target]


def test_alertmanager_runs_the_repo_config_and_prometheus_sends_to_it(
    services: dict[str, dict[str, Any]],
) -> None:
    alertmanager = services["alertmanager"]
    assert image_tag(alertmanager) == ("prom/alertmanager", "v0.25.0")  # Debian 12's version
    # Published on the host's loopback only: Alertmanager's API can silence every alert.
    assert alertmanager["ports"] == ["127.0.0.1:9093:9093"]
    assert published_ports(alertmanager) == {9093: 9093}
    mounts: dict[str, Path] = {}
    for volume in alertmanager["volumes"]:
        source, target, *options = str(volume).split(":")
        if source.startswith("./"):
            assert options == ["ro"], f"{volume} is not read-only"
            mounts[target] = REPO_ROOT / source
    # The image's default --config.file.
    assert mounts == {"/etc/alertmanager/alertmanager.yml": ALERTMANAGER_FILE}
    assert ALERTMANAGER_FILE.is_file()
    assert "alertmanager" in services["prometheus"]["depends_on"]
    config = load_yaml(PROMETHEUS_FILE)
    [target] = [
        t
        for manager in config["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
        for t in group["targets"]
    ]
    assert target == "alertmanager:9093"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == [target]


def test_grafana_mounts_the_provisioning_and_the_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana:11\.\d+\.\d+", grafana["image"])
    assert published_ports(grafana) == {3000: 3000}
    assert "prometheus" in grafana["depends_on"]
    mounts: dict[str, Path] = {}
    for volume in grafana["volumes"]:
        source, target, *options = str(volume).split(":")
        if source.startswith("./"):
            assert options == ["ro"], f"{volume} is not read-only"
            mounts[target] = REPO_ROOT / source
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == REPO_ROOT / "infra" / "grafana" / "provisioning"
    assert (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    # The dashboard provider reads the folder the dashboards are mounted at.
    [provider] = load_yaml(provisioning / "dashboards" / "puhui.yml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert dashboards == REPO_ROOT / "infra" / "grafana" / "dashboards"
    assert sorted(dashboards.glob("*.json")), "the dashboards mount holds no dashboard"
    [source] = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert urlsplit(source["url"]).hostname == "prometheus"
    assert urlsplit(source["url"]).port == published_ports(services["prometheus"])[9090]
