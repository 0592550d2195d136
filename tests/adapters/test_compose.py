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

from infra.broker import KAFKA_VERSION, KafkaBroker
from infra.settings import Settings

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROMETHEUS_FILE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
ALERTMANAGER_FILE = REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml"
KAFKA_START = REPO_ROOT / "infra" / "kafka" / "compose-start.sh"
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
        "kafka-certs",
        "kafka-init",
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


def start_script_properties() -> dict[str, str]:
    """The server.properties that infra/kafka/compose-start.sh writes (its first heredoc)."""
    text = KAFKA_START.read_text(encoding="utf-8")
    body = text.split("<<PROPS\n", 1)[1].split("\nPROPS\n", 1)[0]
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def test_kafka_runs_the_start_script(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in kafka["volumes"]}
    script = mounts["/etc/puhui/kafka-start.sh"]
    assert REPO_ROOT / script == KAFKA_START and KAFKA_START.is_file()
    assert command(kafka) == ["/bin/bash", "/etc/puhui/kafka-start.sh"]
    assert mounts["/tls"] == "kafka-tls"
    assert mounts[start_script_properties()["log.dirs"]] == "kafka-data"
    assert "healthcheck" in kafka
    assert "/tmp/puhui-kafka/admin.properties" in " ".join(kafka["healthcheck"]["test"])


def test_kafka_is_a_single_kraft_node() -> None:
    props = start_script_properties()
    assert props["process.roles"] == "broker,controller"
    voter_id, _, voter_address = props["controller.quorum.voters"].partition("@")
    assert voter_id == props["node.id"]
    bound = listeners(props["listeners"].replace("://:", "://kafka:"))
    controller = props["controller.listener.names"]
    assert voter_address == f"kafka:{bound[controller][1]}"
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    assert set(bound) == protocols.keys()
    for name in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[name] == "1", name
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == "/var/lib/kafka/data"


def test_kafka_is_secured_like_the_local_broker(tmp_path: Path) -> None:
    """SASL_SSL with SCRAM-SHA-512, mutual TLS to the controller, the StandardAuthorizer with deny
    by default: the same security settings as infra/broker.py writes for `puhui kafka start`."""
    props = start_script_properties()
    local_text = KafkaBroker(tmp_path, bootstrap="127.0.0.1:19092").server_properties()
    local = dict(line.split("=", 1) for line in local_text.splitlines() if "=" in line)
    for key in (
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "ssl.keystore.type",
        "ssl.truststore.type",
        "ssl.enabled.protocols",
        "listener.name.controller.ssl.client.auth",
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
    ):
        assert props[key] == local[key], key
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,CLIENT:SASL_SSL"
    advertised = listeners(props["advertised.listeners"])
    assert advertised == {"CLIENT": ("kafka", 9092)}


def test_kafka_is_reached_over_sasl_ssl_with_a_principal_per_service(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "ports" not in services["kafka"], "Kafka must not be published"
    users = {}
    for name in PUHUI_SERVICES:
        env = environment(services[name])
        assert env["PUHUI_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["PUHUI_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["PUHUI_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["PUHUI_KAFKA_CA_FILE"] == "/tls/ca.pem", name
        assert "kafka-tls:/tls:ro" in services[name]["volumes"], name
        assert re.fullmatch(r"\$\{[A-Z_]+_PASSWORD:\?[^}]+\}", env["PUHUI_KAFKA_PASSWORD"]), name
        users[name] = env["PUHUI_KAFKA_USERNAME"]
    assert users == {"worker": "worker", "api": "api", "simulator": "simulator"}


def test_kafka_init_provisions_every_service_principal(
    services: dict[str, dict[str, Any]],
) -> None:
    from entrypoints.cli import build_parser

    init = services["kafka-init"]
    args = build_parser().parse_args(command(init)[1:])
    assert (args.command, args.action, args.notifier_in_api) == ("kafka", "provision", True)
    env = environment(init)
    assert env["PUHUI_KAFKA_USERNAME"] == "admin"
    for name in PUHUI_SERVICES:
        user = environment(services[name])["PUHUI_KAFKA_USERNAME"]
        # the same variable as the service's own password
        assert (
            env[f"{user.upper()}_KAFKA_PASSWORD"]
            == environment(services[name])["PUHUI_KAFKA_PASSWORD"]
        )
        assert services[name]["depends_on"]["kafka-init"]["condition"] == (
            "service_completed_successfully"
        )
    certs = services["kafka-certs"]
    args = build_parser().parse_args(command(certs)[1:])
    assert (args.action, args.dir, args.host) == ("certs", "/tls", ["kafka"])
    assert services["kafka"]["depends_on"]["kafka-certs"]["condition"] == (
        "service_completed_successfully"
    )


def test_secrets_come_from_the_environment_without_defaults(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for var in re.findall(r"\$\{([A-Z_]*PASSWORD)[^}]*\}", text):
        assert re.search(r"\$\{" + var + r":\?", text), var
    assert not re.search(r"\$\{[A-Z_]*PASSWORD:-", text), "a password with a default"
    grafana = environment(compose["services"]["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_only_the_api_and_grafana_are_published(services: dict[str, dict[str, Any]]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api", "grafana"}


def test_the_backend_network_is_internal(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("kafka", "postgres", "worker", "prometheus", "kafka-init", "simulator"):
        assert services[name]["networks"] == ["backend"], name
    for name in ("api", "grafana"):
        assert set(services[name]["networks"]) == {"backend", "frontend"}, name


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


def test_published_ports_match_settings(services: dict[str, dict[str, Any]]) -> None:
    api = environment(services["api"])
    port = int(api["PUHUI_HTTP_PORT"])
    assert published_ports(services["api"]) == {port: port}
    # The settings default (127.0.0.1) would be unreachable from the host and from Prometheus;
    # the worker's port is reachable on the internal network only (no ports published).
    assert api["PUHUI_HTTP_HOST"] == "0.0.0.0"
    assert environment(services["worker"])["PUHUI_WORKER_HOST"] == "0.0.0.0"
    assert "ports" not in services["worker"]


def test_prometheus_mounts_exist_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert image_tag(prometheus) == ("prom/prometheus", "v2.42.0")
    assert "ports" not in prometheus
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
    # Not published at all (its API can silence every alert): Prometheus reaches it on the
    # internal network, and it reaches the pagers through the outside one.
    assert "ports" not in alertmanager
    assert set(alertmanager["networks"]) == {"backend", "frontend"}
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
    assert urlsplit(source["url"]).port == 9090  # Prometheus's port, on the internal network


def test_the_image_holds_every_package() -> None:
    """pyproject's packages are what the image copies (a package left out fails at start)."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in REPO_ROOT.glob("*/__init__.py"))
    for name in packages:
        if name != "tests":
            assert f"COPY {name}/ {name}/" in text, name
