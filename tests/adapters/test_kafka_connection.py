"""infra/kafka_security.py without a broker: which settings a process connects with, the kwargs of
each client library, the TLS material, and the ACLs each principal gets."""

from __future__ import annotations

import builtins
import ipaddress
import json
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from infra.kafka_security import (
    KafkaClient,
    KafkaConfigError,
    SecurityFiles,
    client_for,
    component_acls,
    create_tls_material,
    role_acls,
)
from infra.settings import Settings

pytestmark = pytest.mark.unit

TOPICS = {
    "readings": "puhui.sensor-readings",
    "reports": "puhui.volunteer-reports",
    "alerts": "puhui.alerts",
    "dead_letters": "puhui.dead-letters",
    "commands": "puhui.alert-commands",
    "cases": "puhui.cases",
}


def local_broker(state_dir: Path, protocol: str = "SASL_SSL") -> SecurityFiles:
    """The files `puhui kafka start` leaves under a state directory."""
    files = SecurityFiles.of_state_dir(state_dir)
    files.write_client_file("127.0.0.1:9092", protocol)
    if protocol == "SASL_SSL":
        for user in ("admin", "worker", "api"):
            files.password(user, create=True)
        files.ca_cert.write_text("(a CA)")
    return files


def settings(state_dir: Path, **values: Any) -> Settings:
    return Settings(state_dir=state_dir, kafka_bootstrap="127.0.0.1:9092", **values)


def test_each_component_finds_its_own_principal_under_the_state_dir(tmp_path: Path) -> None:
    files = local_broker(tmp_path)
    worker = client_for(settings(tmp_path), "worker")
    assert worker.security_protocol == "SASL_SSL"
    assert worker.sasl_mechanism == "SCRAM-SHA-512"
    assert (worker.username, worker.password) == ("worker", files.password("worker"))
    assert worker.ca_file == files.ca_cert
    assert client_for(settings(tmp_path), "api").username == "api"
    assert stat.S_IMODE(files.password_file("worker").stat().st_mode) == 0o600
    assert "password" not in json.loads(files.client_file.read_text())


def test_explicit_settings_win_over_the_local_files(tmp_path: Path) -> None:
    local_broker(tmp_path)
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    ca = tmp_path / "ca.pem"
    client = client_for(
        settings(
            tmp_path,
            kafka_username="gateway-1",
            kafka_password_file=secret,
            kafka_ca_file=ca,
            kafka_sasl_mechanism="SCRAM-SHA-256",
        ),
        "worker",
    )
    assert (client.username, client.password, client.ca_file) == ("gateway-1", "from-a-file", ca)
    assert client.sasl_mechanism == "SCRAM-SHA-256"
    direct = client_for(settings(tmp_path, kafka_username="u", kafka_password="p"), "api")
    assert (direct.username, direct.password) == ("u", "p")


def test_plaintext_only_when_asked_for(tmp_path: Path) -> None:
    # Nothing configured and no local broker: SASL_SSL is asked for, and it says what is missing.
    with pytest.raises(KafkaConfigError, match="PUHUI_KAFKA_USERNAME") as info:
        client_for(settings(tmp_path / "empty"), "worker")
    assert "PLAINTEXT" in str(info.value)
    assert client_for(settings(tmp_path, kafka_security_protocol="PLAINTEXT")).secured is False
    # A local broker started as PLAINTEXT (explicitly) is connected to as such.
    local_broker(tmp_path / "plain", "PLAINTEXT")
    assert client_for(settings(tmp_path / "plain"), "worker").secured is False
    # ... unless SASL_SSL is asked for explicitly: then credentials are needed.
    with pytest.raises(KafkaConfigError):
        client_for(settings(tmp_path / "plain", kafka_security_protocol="SASL_SSL"), "worker")


def test_a_missing_password_file_is_named_without_its_content(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(KafkaConfigError, match="PUHUI_KAFKA_PASSWORD_FILE"):
        client_for(settings(tmp_path, kafka_username="u", kafka_password_file=missing))


def test_one_client_gives_the_kwargs_of_every_library(tmp_path: Path) -> None:
    client = KafkaClient(
        "127.0.0.1:9092,127.0.0.1:9094",
        security_protocol="SASL_SSL",
        username="worker",
        password="s3cret",
        ca_file=None,
    )
    assert "s3cret" not in repr(client)
    kp = client.kafka_python()
    assert kp["bootstrap_servers"] == ["127.0.0.1:9092", "127.0.0.1:9094"]
    assert (kp["security_protocol"], kp["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kp["sasl_plain_username"], kp["sasl_plain_password"]) == ("worker", "s3cret")
    aio = client.aiokafka()
    assert isinstance(aio["ssl_context"], ssl.SSLContext)
    assert aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED and aio["ssl_context"].check_hostname
    faust = client.faust()
    assert faust["broker"] == ["kafka://127.0.0.1:9092", "kafka://127.0.0.1:9094"]
    credentials = faust["broker_credentials"]
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    plain = KafkaClient("127.0.0.1:9092")
    assert plain.kafka_python() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert "broker_credentials" not in plain.faust()
    with pytest.raises(KafkaConfigError):
        KafkaClient("127.0.0.1:9092", security_protocol="SASL_SSL", username="u")
    with pytest.raises(KafkaConfigError):
        KafkaClient("127.0.0.1:9092", security_protocol="SSL")


@pytest.mark.parametrize("tool", ["cryptography", "openssl"])
def test_tls_material_is_a_ca_and_a_broker_certificate_for_its_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    if tool == "openssl":
        real_import = builtins.__import__

        def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "cryptography":
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_cryptography)
    files = SecurityFiles(tmp_path / "tls")
    create_tls_material(files, ["kafka"])
    monkeypatch.undo()
    for secret in (files.ca_key, files.keystore):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    keystore = files.keystore.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM store wants
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    chain = x509.load_pem_x509_certificates(keystore.encode())
    broker = chain[0]
    assert broker.issuer == ca.subject
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"kafka", "localhost"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    # A client context trusting the CA accepts the broker's chain (loads without error).
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    ctx.load_cert_chain(files.keystore)
    before = files.keystore.read_bytes()
    create_tls_material(files, ["kafka"])  # made once: kept on the next start
    assert files.keystore.read_bytes() == before


def test_nothing_but_the_worker_may_write_alerts() -> None:
    writers = {
        component
        for component in ("worker", "api", "notifier", "simulator")
        for rtype, name, _, op in component_acls(component, TOPICS, "puhui", "puhui-notifier")
        if rtype == "topic" and name == TOPICS["alerts"] and op in ("write", "all")
    }
    assert writers == {"worker"}
    case_readers = {
        component
        for component in ("worker", "api", "notifier", "simulator")
        for rtype, name, _, op in component_acls(component, TOPICS, "puhui", "puhui-notifier")
        if rtype == "topic" and name == TOPICS["cases"] and op in ("read", "all")
    }
    assert case_readers == {"worker"}  # the single writer of cases
    gateway = role_acls("gateway", "gw", TOPICS)
    assert {(name, op) for _, name, _, op in gateway} == {
        (TOPICS["readings"], "write"),
        (TOPICS["reports"], "write"),
    }
    reader = role_acls("reader", "ops", TOPICS)
    assert all(op == "read" for *_, op in reader)
    assert ("group", "ops", "prefixed", "read") in reader
    with pytest.raises(KafkaConfigError):
        role_acls("root", "x", TOPICS)
