"""Kafka security: the connection settings of a client, TLS material, SCRAM principals and ACLs.

One place builds the keyword arguments of every Kafka client library the project uses
(:class:`KafkaClient`: ``kafka_python()``, ``aiokafka()``, ``faust()``); every call site takes a
:class:`KafkaClient` instead of a bare ``host:port``.

Layout of a secured local broker's material, under ``state_dir / "kafka" / "security"``::

    ca.pem, ca.key          the local certificate authority (key 0600)
    broker.pem              the broker's private key and certificate chain (PEM keystore, 0600)
    users/<name>.password   one SCRAM-SHA-512 password per principal (0600)
    client.json             bootstrap, protocol, mechanism and CA file (no secret): how the
                            project's own processes find the local broker by themselves

Principals: ``admin`` (a super user, created when the storage is formatted), one per component
(``worker``, ``api``, ``notifier``, ``simulator``) with only the ACLs it needs
(:func:`component_acls`), and outside systems' (``puhui kafka client``, :func:`role_acls`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import PuhuiError

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = [
    "ADMIN_USER",
    "BROKER_CN",
    "COMPONENTS",
    "ROLES",
    "KafkaClient",
    "KafkaConfigError",
    "SecurityFiles",
    "as_client",
    "client_for",
    "component_acls",
    "create_tls_material",
    "revoke_principal",
    "role_acls",
    "upsert_principal",
]

ADMIN_USER = "admin"
BROKER_CN = "puhui-broker"
DEFAULT_MECHANISM = "SCRAM-SHA-512"
COMPONENTS = ("worker", "api", "notifier", "simulator")
ROLES = ("gateway", "reader", "admin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KafkaConfigError(PuhuiError, RuntimeError):
    """The Kafka connection settings are incomplete or contradictory (the message says how)."""


@dataclass(frozen=True)
class KafkaClient:
    """How one client connects: bootstrap servers, protocol, SASL principal and the CA to trust.

    ``security_protocol`` is ``SASL_SSL`` (with ``sasl_mechanism``, ``username``, ``password``
    and ``ca_file``) or ``PLAINTEXT``. The password never appears in ``repr``.
    """

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = DEFAULT_MECHANISM
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if self.security_protocol not in ("PLAINTEXT", "SASL_SSL"):
            raise KafkaConfigError(
                f"security protocol {self.security_protocol!r}: SASL_SSL or PLAINTEXT"
            )
        if self.security_protocol == "SASL_SSL" and not (self.username and self.password):
            raise KafkaConfigError("SASL_SSL needs a username and a password")

    @property
    def secured(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    def servers(self) -> list[str]:
        return [part.strip() for part in self.bootstrap.split(",") if part.strip()]

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting ``ca_file`` (the system's CAs when none is given)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's ``KafkaProducer``/``KafkaConsumer``/admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.servers(),
            "security_protocol": self.security_protocol,
        }
        if self.secured:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
                ssl_cafile=str(self.ca_file) if self.ca_file else None,
                ssl_check_hostname=True,
            )
        return kwargs

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's ``AIOKafkaProducer``/``AIOKafkaConsumer``."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.servers(),
            "security_protocol": self.security_protocol,
        }
        if self.secured:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
                ssl_context=self.ssl_context(),
            )
        return kwargs

    def faust(self) -> dict[str, Any]:
        """Keyword arguments of ``faust.App``: ``broker`` and ``broker_credentials``."""
        kwargs: dict[str, Any] = {"broker": [f"kafka://{host}" for host in self.servers()]}
        if self.secured:
            import faust

            kwargs["broker_credentials"] = faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        return kwargs

    def outside_kwargs(self) -> dict[str, Any]:
        """What ``puhui kafka client`` prints: kafka-python/aiokafka kwargs, JSON-serialisable."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
            "ssl_cafile": str(Path(self.ca_file).resolve()) if self.ca_file else None,
        }


def as_client(kafka: KafkaClient | str) -> KafkaClient:
    """``kafka`` itself, or a bare ``host:port`` as a PLAINTEXT connection (a broker started
    with ``PUHUI_KAFKA_SECURITY_PROTOCOL=PLAINTEXT``)."""
    return kafka if isinstance(kafka, KafkaClient) else KafkaClient(bootstrap=kafka)


# -- files of a local secured broker ---------------------------------------------------------


@dataclass(frozen=True)
class SecurityFiles:
    """Paths of a local broker's security material (see the module docstring)."""

    root: Path

    @classmethod
    def of_state_dir(cls, state_dir: Path) -> SecurityFiles:
        return cls(Path(state_dir).expanduser().resolve() / "kafka" / "security")

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.pem"

    @property
    def client_file(self) -> Path:
        return self.root / "client.json"

    def password_file(self, user: str) -> Path:
        check_name(user)
        return self.root / "users" / f"{user}.password"

    def has_tls(self) -> bool:
        return self.ca_cert.is_file() and self.keystore.is_file()

    def password(self, user: str, create: bool = False) -> str | None:
        """The stored password of ``user``; with ``create``, a new one is generated and stored
        (mode 0600) if there is none."""
        path = self.password_file(user)
        with contextlib.suppress(FileNotFoundError):
            return path.read_text().strip()
        if not create:
            return None
        password = secrets.token_urlsafe(32)
        write_secret(path, password + "\n")
        return password

    def forget(self, user: str) -> None:
        self.password_file(user).unlink(missing_ok=True)

    def write_client_file(self, bootstrap: str, security_protocol: str) -> None:
        info = {
            "bootstrap": bootstrap,
            "security_protocol": security_protocol,
            "sasl_mechanism": DEFAULT_MECHANISM,
            "ca_file": str(self.ca_cert) if security_protocol == "SASL_SSL" else None,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.client_file.with_name(".client.json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.client_file)

    def read_client_file(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.client_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def client(self, user: str, bootstrap: str | None = None) -> KafkaClient:
        """The connection of ``user`` to this local broker (read from the files)."""
        info = self.read_client_file()
        if info is None:
            raise KafkaConfigError(f"no local broker settings in {self.client_file}")
        if info.get("security_protocol") == "PLAINTEXT":
            return KafkaClient(bootstrap or str(info["bootstrap"]))
        password = self.password(user)
        if password is None:
            raise KafkaConfigError(f"no password for Kafka principal {user!r} under {self.root}")
        return KafkaClient(
            bootstrap or str(info["bootstrap"]),
            security_protocol="SASL_SSL",
            sasl_mechanism=str(info.get("sasl_mechanism") or DEFAULT_MECHANISM),
            username=user,
            password=password,
            ca_file=self.ca_cert,
        )


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise KafkaConfigError(
            f"principal name {name!r}: 1-64 letters, digits, '.', '_' or '-', not starting with"
            " a punctuation mark"
        )
    return name


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


# -- which settings a process uses -------------------------------------------------------------


def client_for(settings: Settings, component: str = ADMIN_USER) -> KafkaClient:
    """The Kafka connection of ``component`` (``worker``, ``api``, ``notifier``, ``simulator``,
    ``admin``) as the settings describe it.

    ``PUHUI_KAFKA_SECURITY_PROTOCOL=PLAINTEXT``: plaintext, asked for explicitly. Otherwise
    SASL_SSL: ``PUHUI_KAFKA_USERNAME`` with ``PUHUI_KAFKA_PASSWORD`` (or ``_FILE``) and
    ``PUHUI_KAFKA_CA_FILE`` when set; whatever is not set comes from the local broker's files
    under ``PUHUI_STATE_DIR`` (written by ``puhui kafka start``), where the component's own
    principal is used. A local broker started as PLAINTEXT is connected to as PLAINTEXT.
    """
    protocol = settings.kafka_security_protocol
    bootstrap = settings.kafka_bootstrap
    if protocol == "PLAINTEXT":
        return KafkaClient(bootstrap)
    files = SecurityFiles.of_state_dir(settings.state_dir)
    local = files.read_client_file()
    if protocol is None and local is not None and local.get("security_protocol") == "PLAINTEXT":
        return KafkaClient(bootstrap)
    username = settings.kafka_username
    password: str | None = None
    if settings.kafka_password is not None:
        password = settings.kafka_password.get_secret_value()
    elif settings.kafka_password_file is not None:
        try:
            password = settings.kafka_password_file.read_text().strip()
        except OSError as exc:
            raise KafkaConfigError(
                f"cannot read PUHUI_KAFKA_PASSWORD_FILE {settings.kafka_password_file}: "
                f"{exc.strerror}"
            ) from None
    if username is None and local is not None:
        username = component
    if password is None and username is not None and local is not None:
        password = files.password(username)
    ca_file = settings.kafka_ca_file
    if ca_file is None and local is not None and local.get("ca_file"):
        ca_file = Path(str(local["ca_file"]))
    if not username or not password:
        raise KafkaConfigError(
            "Kafka is SASL_SSL by default but no credentials were found: set PUHUI_KAFKA_USERNAME"
            " and PUHUI_KAFKA_PASSWORD (or PUHUI_KAFKA_PASSWORD_FILE), or start the local broker"
            f" with `puhui kafka start` (its files: {files.root}), or set"
            " PUHUI_KAFKA_SECURITY_PROTOCOL=PLAINTEXT for a plaintext broker"
        )
    return KafkaClient(
        bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism=settings.kafka_sasl_mechanism,
        username=username,
        password=password,
        ca_file=ca_file,
    )


# -- TLS material ----------------------------------------------------------------------------


def create_tls_material(files: SecurityFiles, hosts: Iterable[str]) -> None:
    """Create the CA and the broker's certificate (for ``hosts``: names and IP addresses) unless
    they exist. Uses the ``cryptography`` package if installed, else the ``openssl`` command."""
    if files.has_tls():
        return
    files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = sorted(set(hosts) | {"localhost", "127.0.0.1"})
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _tls_with_openssl(files, names)
    else:
        _tls_with_cryptography(files, names)


def _tls_with_cryptography(files: SecurityFiles, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "puhui local Kafka CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    write_secret(files.ca_key, ca_key.private_bytes(pem, pkcs8, plain).decode())
    write_secret(
        files.keystore,
        key.private_bytes(pem, pkcs8, plain).decode()
        + cert.public_bytes(pem).decode()
        + ca_cert.public_bytes(pem).decode(),
    )
    files.ca_cert.write_text(ca_cert.public_bytes(pem).decode())


def _tls_with_openssl(files: SecurityFiles, names: list[str]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaConfigError(
            "neither the Python 'cryptography' package nor the 'openssl' command is available"
            " to create the broker's certificate"
        )
    san = ",".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in names)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        ext = tmp / "ext.cnf"
        ext.write_text(
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        )

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=tmp)

        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key")
        run(
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=puhui local Kafka CA",
            "-days",
            "3650",
            "-out",
            "ca.pem",
        )
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "b.key")
        run("req", "-new", "-key", "b.key", "-subj", f"/CN={BROKER_CN}", "-out", "b.csr")
        run(
            "x509",
            "-req",
            "-in",
            "b.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "825",
            "-extfile",
            "ext.cnf",
            "-out",
            "b.pem",
        )
        run("pkcs8", "-topk8", "-nocrypt", "-in", "b.key", "-out", "b.p8")
        write_secret(files.ca_key, (tmp / "ca.key").read_text())
        write_secret(
            files.keystore,
            (tmp / "b.p8").read_text() + (tmp / "b.pem").read_text() + (tmp / "ca.pem").read_text(),
        )
        files.ca_cert.write_text((tmp / "ca.pem").read_text())


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- principals and ACLs -----------------------------------------------------------------------

# (resource type, name, pattern, operation); resource types: topic, group, cluster,
# transactional_id; pattern: literal or prefixed.
Grant = tuple[str, str, str, str]


def component_acls(
    component: str, topics: Mapping[str, str], app_id: str, notify_group: str
) -> list[Grant]:
    """What each of the project's own components may do, and nothing more.

    ``topics``: the public topic names by role (readings, reports, alerts, dead_letters,
    commands, cases), prefix included.
    """
    t = topics
    if component == "worker":
        return [
            *(
                ("topic", t[k], "literal", "read")
                for k in ("readings", "reports", "commands", "cases")
            ),
            *(("topic", t[k], "literal", "write") for k in ("alerts", "dead_letters")),
            # the case worker's overdue check produces `escalate` commands
            ("topic", t["cases"], "literal", "write"),
            # the persist agent writes the alert records to the database from the topic
            ("topic", t["alerts"], "literal", "read"),
            # changelog, report ticks and Faust's other internal topics: <app_id>-...
            ("topic", f"{app_id}-", "prefixed", "all"),
            ("group", app_id, "literal", "read"),
        ]
    if component == "api":
        return [
            ("topic", t["reports"], "literal", "write"),
            ("topic", t["commands"], "literal", "write"),
            ("topic", t["cases"], "literal", "write"),
            ("topic", t["alerts"], "literal", "read"),
            # readiness checks that every public topic exists
            ("topic", t["readings"], "literal", "describe"),
            ("topic", t["dead_letters"], "literal", "describe"),
        ]
    if component == "notifier":
        return [
            ("topic", t["alerts"], "literal", "read"),
            ("group", notify_group, "literal", "read"),
        ]
    if component == "simulator":
        return [
            ("topic", t["readings"], "literal", "write"),
            ("topic", t["reports"], "literal", "write"),
            # `puhui simulate` starts after the newest event time already on the topic
            ("topic", t["readings"], "literal", "read"),
        ]
    raise KafkaConfigError(f"unknown component {component!r}")


def role_acls(role: str, name: str, topics: Mapping[str, str]) -> list[Grant]:
    """ACLs of an outside system's principal by role: ``gateway`` writes readings and reports;
    ``reader`` consumes alerts and dead letters (consumer groups named ``<name>...``);
    ``admin`` may do everything."""
    if role == "gateway":
        return [
            ("topic", topics["readings"], "literal", "write"),
            ("topic", topics["reports"], "literal", "write"),
        ]
    if role == "reader":
        return [
            ("topic", topics["alerts"], "literal", "read"),
            ("topic", topics["dead_letters"], "literal", "read"),
            ("group", name, "prefixed", "read"),
        ]
    if role == "admin":
        return [
            ("cluster", "kafka-cluster", "literal", "all"),
            ("topic", "*", "literal", "all"),
            ("group", "*", "literal", "all"),
            ("transactional_id", "*", "literal", "all"),
        ]
    raise KafkaConfigError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def _acl(user: str, grant: Grant) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    rtype, name, pattern, operation = grant
    return ACL(
        principal=f"User:{user}",
        host="*",
        operation=ACLOperation[operation.upper()],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[rtype.upper()], name, ACLResourcePatternType[pattern.upper()]
        ),
    )


def upsert_principal(
    admin: KafkaClient, user: str, password: str, grants: Iterable[Grant], timeout: float = 30
) -> None:
    """Create (or update) the SCRAM credential of ``user`` and add its ACLs (idempotent)."""
    from kafka.admin import UserScramCredentialUpsertion

    from infra.kafka_admin import admin_client

    check_name(user)
    acls = [_acl(user, grant) for grant in grants]
    with admin_client(admin, timeout=timeout) as client:
        _check_user_result(
            client.alter_user_scram_credentials(
                [
                    UserScramCredentialUpsertion(
                        user, admin.sasl_mechanism, password, iterations=8192
                    )
                ]
            )
        )
        if acls:
            result = client.create_acls(acls)
            failed = result.get("failed") if isinstance(result, dict) else None
            if failed:
                raise KafkaConfigError(f"creating ACLs of {user!r} failed: {failed!r}")


def revoke_principal(admin: KafkaClient, user: str, timeout: float = 30) -> bool:
    """Delete ``user``'s SCRAM credential and every ACL naming it. True if it had a credential."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
        UserScramCredentialDeletion,
    )

    from infra.kafka_admin import admin_client

    check_name(user)
    with admin_client(admin, timeout=timeout) as client:
        described = client.describe_user_scram_credentials([user])
        existed = _user_exists(described, user)
        if existed:
            _check_user_result(
                client.alter_user_scram_credentials(
                    [UserScramCredentialDeletion(user, admin.sasl_mechanism)]
                )
            )
        client.delete_acls(
            [
                ACLFilter(
                    principal=f"User:{user}",
                    host="*",
                    operation=ACLOperation.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(
                        ResourceType.ANY, None, ACLResourcePatternType.ANY
                    ),
                )
            ]
        )
    return existed


def _user_exists(described: Any, user: str) -> bool:
    """kafka-python 3.x: {user: {"error": ..., "credential_infos": [...]}}."""
    entry = described.get(user) if isinstance(described, dict) else None
    return bool(entry and not entry.get("error") and entry.get("credential_infos"))


def _check_user_result(result: Any) -> None:
    """kafka-python 3.x: {user: error message or None}."""
    for user, error in (result or {}).items():
        if error:
            raise KafkaConfigError(f"SCRAM credential of {user!r}: {error}")
