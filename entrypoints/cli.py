"""The ``puhui`` command: broker, worker, API, simulator, tokens, and ``up`` for all of them.

Settings are read from the environment here, once, and passed down.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from infra.logs import configure_logging, logging_config
from infra.settings import Settings

log = logging.getLogger("puhui")


def _broker(settings: Settings):  # type: ignore[no-untyped-def]
    from infra.broker import KafkaBroker

    return KafkaBroker(
        settings.state_dir,
        bootstrap=settings.kafka_bootstrap,
        controller_port=settings.kafka_controller_port,
        security="PLAINTEXT" if settings.kafka_security_protocol == "PLAINTEXT" else "SASL_SSL",
    )


def _topic_roles(settings: Settings) -> dict[str, str]:
    from models.topics import TopicNames

    t = TopicNames.with_prefix(settings.topic_prefix)
    return {
        "readings": t.readings,
        "reports": t.reports,
        "alerts": t.alerts,
        "dead_letters": t.dead_letters,
        "commands": t.commands,
        "cases": t.cases,
    }


def provision_components(settings: Settings, broker) -> None:  # type: ignore[no-untyped-def]
    """One SCRAM principal per component with its ACLs (passwords made once, kept 0600)."""
    from infra.kafka_security import COMPONENTS, component_acls, upsert_principal

    if not broker.secured:
        return
    admin = broker.client()
    files = broker.security_files
    notify_group = settings.notify_group or f"{settings.app_id}-notifier"
    for component in COMPONENTS:
        password = files.password(component, create=True)
        grants = component_acls(component, _topic_roles(settings), settings.app_id, notify_group)
        upsert_principal(admin, component, password, grants)


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings)
    if args.action == "start":
        broker.start()
        provision_components(settings, broker)
        mode = "SASL_SSL (SCRAM-SHA-512, ACLs)" if broker.secured else "PLAINTEXT"
        print(f"kafka serving on {settings.kafka_bootstrap}, {mode}")
        if broker.secured:
            print(f"CA, passwords and client settings in {broker.security_files.root}")
    elif args.action == "stop":
        broker.stop()
        print("kafka stopped")
    else:
        status = broker.status()
        print(
            f"kafka running={status.running} serving={status.serving} pid={status.pid} "
            f"bootstrap={status.bootstrap}"
        )
        return 0 if status.serving else 1
    return 0


def cmd_kafka_client(settings: Settings, args: argparse.Namespace) -> int:
    """``puhui kafka client``: a principal for an outside system, or its revocation."""
    import kafka.errors

    try:
        return _kafka_client(settings, args)
    except kafka.errors.KafkaError as exc:
        # e.g. ClusterAuthorizationFailed: the configured principal is not a super user
        print(f"error: {type(exc).__name__}: {exc} (this needs Kafka's admin)", file=sys.stderr)
        return 1


def _kafka_client(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from infra.kafka_security import (
        KafkaClient,
        client_for,
        revoke_principal,
        role_acls,
        upsert_principal,
    )

    broker = _broker(settings)
    admin = client_for(settings, "admin")
    if not admin.secured:
        print("the broker is PLAINTEXT: it has no principals", file=sys.stderr)
        return 2
    files = broker.security_files
    if args.revoke:
        existed = revoke_principal(admin, args.revoke)
        files.forget(args.revoke)
        print(f"principal {args.revoke} revoked" if existed else f"no principal {args.revoke}")
        return 0 if existed else 1
    if not args.name or not args.role:
        print("--name and --role are needed (or --revoke NAME)", file=sys.stderr)
        return 2
    if args.name in ("admin", "worker", "api", "notifier", "simulator"):
        print(
            f"{args.name!r} is one of Puhui's own principals; choose another name", file=sys.stderr
        )
        return 2
    password = files.password(args.name, create=True)
    assert password is not None
    upsert_principal(
        admin, args.name, password, role_acls(args.role, args.name, _topic_roles(settings))
    )
    client = KafkaClient(
        settings.kafka_bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism=admin.sasl_mechanism,
        username=args.name,
        password=password,
        ca_file=admin.ca_file,
    )
    print(
        f"principal {args.name} ({args.role}); password kept in {files.password_file(args.name)}"
        f" (0600). kafka-python / aiokafka keyword arguments:"
    )
    print(json.dumps(client.outside_kwargs()), flush=True)
    return 0


def cmd_kafka_certs(settings: Settings, args: argparse.Namespace) -> int:
    """``puhui kafka certs``: a CA and a broker certificate for a broker elsewhere (compose)."""
    from pathlib import Path

    from infra.kafka_security import SecurityFiles, create_tls_material

    files = SecurityFiles(Path(args.dir).resolve())
    existed = files.has_tls()
    create_tls_material(files, args.host)
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        os.chown(files.keystore, int(uid), int(gid or uid))
    for path in (files.root, files.ca_cert):
        path.chmod(0o755 if path.is_dir() else 0o644)
    print(f"{'kept' if existed else 'made'} {files.ca_cert} and {files.keystore}")
    return 0


def cmd_kafka_provision(settings: Settings, args: argparse.Namespace) -> int:
    """``puhui kafka provision``: topics, and each component's principal and ACLs, on a broker
    elsewhere (docker-compose's kafka-init), as the super user the settings name. Passwords come
    from ``<COMPONENT>_KAFKA_PASSWORD`` (WORKER_, API_, SIMULATOR_); with ``--notifier-in-api``
    the api principal also gets the notifier's ACLs (the notifier runs in the API process)."""
    from infra.kafka_admin import ensure_topics, wait_for_metadata
    from infra.kafka_security import client_for, component_acls, upsert_principal
    from models.topics import TopicNames

    admin = client_for(settings, "admin")
    wait_for_metadata(admin, timeout=120)
    topics = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(admin, topics.partitions(settings.topic_partitions))
    notify_group = settings.notify_group or f"{settings.app_id}-notifier"
    roles = _topic_roles(settings)
    for component in ("worker", "api", "notifier", "simulator"):
        password = os.environ.get(f"{component.upper()}_KAFKA_PASSWORD")
        if not password:
            continue
        grants = component_acls(component, roles, settings.app_id, notify_group)
        if component == "api" and args.notifier_in_api:
            grants += component_acls("notifier", roles, settings.app_id, notify_group)
        upsert_principal(admin, component, password, grants)
        print(f"principal {component}: {len(grants)} ACLs", flush=True)
    return 0


def prepare(settings: Settings) -> None:
    """Create the public topics and migrate the database (both harmless when done already)."""
    from infra.db import migrate
    from infra.kafka_admin import ensure_topics, set_topic_configs, wait_for_metadata
    from infra.kafka_security import client_for
    from models.topics import TopicNames

    admin = client_for(settings, "admin")
    wait_for_metadata(admin, timeout=60)
    topics = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(admin, topics.partitions(settings.topic_partitions))
    # The topics that carry volunteers' data keep it no longer than the database does.
    retention_ms = str(int(settings.report_retention_days * 86_400_000))
    carrying = (topics.reports, topics.alerts, topics.dead_letters)
    try:
        set_topic_configs(admin, {name: {"retention.ms": retention_ms} for name in carrying})
    except Exception as exc:  # a principal without AlterConfigs on a shared cluster
        logging.getLogger("puhui").warning(
            "retention.ms of %s not set (%s): the cluster's admin must set it to %s "
            "(kafka-configs.sh --alter --add-config retention.ms=...; docs/privacy.md)",
            ", ".join(carrying),
            type(exc).__name__,
            retention_ms,
        )
    migrate(settings.resolved_database_url())


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from infra.db import migrate

    migrate(settings.resolved_database_url())
    print("database at the newest schema")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.app import create_app
    from streams.faust_compat.stopping import Worker

    prepare(settings)
    pipeline = create_app(settings)
    worker = Worker(
        pipeline.app,
        stop_timeout=settings.stop_timeout_seconds,
        loglevel=settings.log_level,
        logging_config=logging_config(settings),
    )
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from entrypoints.apps import build_api
    from infra.db import migrate

    migrate(settings.resolved_database_url())
    uvicorn.run(
        build_api(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )
    return 0


def cmd_notifier(settings: Settings, args: argparse.Namespace) -> int:
    from infra.db import migrate
    from notifier.process import run

    migrate(settings.resolved_database_url())
    return run(settings)


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from infra.kafka_admin import ensure_topics
    from infra.kafka_security import client_for
    from models.topics import TopicNames
    from streams.app import load_registry
    from tools.producing import newest_event_time, run_scenario, simulation_start
    from tools.simulator import SCENARIOS, generate, generate_reports

    if args.scenario not in SCENARIOS:
        print(
            f"unknown scenario {args.scenario!r}; one of: {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    zones = load_registry(settings)
    topics = TopicNames.with_prefix(settings.topic_prefix)
    kafka = client_for(settings, "simulator")
    if args.start:
        start = datetime.fromisoformat(args.start)
    else:
        # After the newest event time already on the topic (a demo that ran ahead): readings
        # older than their sensors' latest would all be dropped as stale.
        newest = newest_event_time(kafka, topics.readings)
        now = datetime.now(UTC)
        start = simulation_start(now, newest)
        if newest is not None and newest >= now:
            print(f"the readings topic already reaches {newest.isoformat()}", flush=True)
    if start.tzinfo is None:
        print("--start needs a UTC offset, e.g. 2026-10-01T18:00:00+08:00", file=sys.stderr)
        return 2
    window = timedelta(minutes=args.minutes)
    readings = generate(zones, start, window, scenario=args.scenario, seed=args.seed)
    reports = [
        r
        for r in generate_reports(zones, start, window, scenario=args.scenario, seed=args.seed)
        if r.submitted_at < start + window
    ]
    # Only the topics it writes: the simulator's principal may not see (or create) the others.
    ensure_topics(kafka, {t: settings.topic_partitions for t in (topics.readings, topics.reports)})
    speed = float("inf") if args.speed <= 0 else args.speed
    print(
        f"simulating {len(readings)} readings and {len(reports)} reports ({args.scenario}, "
        f"{args.minutes} min of event time from {start.isoformat()}) at speed {args.speed:g}",
        flush=True,
    )
    sent, sent_reports = run_scenario(
        kafka, topics.readings, readings, topics.reports, reports, speed=speed
    )
    print(f"sent {sent} readings and {sent_reports} reports", flush=True)
    return 0


def _check_unit(settings: Settings, role: str, unit: str | None) -> None:
    """A responder's ``--unit`` must name a unit of the units file (``ValueError`` otherwise)."""
    from models.units import load_bundled_units, load_units

    if role != "responder":
        if unit:
            raise ValueError("--unit is for responder tokens only")
        return
    if not unit:
        raise ValueError("a responder token needs --unit UNIT_ID (see GET /api/units)")
    units = load_units(settings.units_file) if settings.units_file else load_bundled_units()
    if unit not in units:
        known = ", ".join(u.id for u in units)
        raise ValueError(f"unknown unit {unit[:64]!r} (units: {known})")


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:  # noqa: C901 — one branch per `puhui token` action
    from infra.db import make_engine, migrate
    from infra.tokens import Role, create_token, list_tokens, parse_lifetime, revoke_token

    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    if args.action == "create":
        try:
            _check_unit(settings, args.role, args.unit)
            lifetime = parse_lifetime(args.expires_in) if args.expires_in else None
            token = create_token(
                engine,
                args.name,
                Role(args.role),
                now,
                expires_in=lifetime,
                principal=args.principal,
                unit_id=args.unit,
            )
        except ValueError as exc:
            print(f"puhui token create: {exc}", file=sys.stderr)
            return 2
        until = f", expires {(now + lifetime).isoformat(timespec='seconds')}" if lifetime else ""
        unit = f", unit {args.unit}" if args.unit else ""
        print(f"token for {args.name} ({args.role}{unit}{until}); shown once, stored hashed:")
        print(token)
    elif args.action == "list":
        print("id\trole\tprincipal\tname\tcreated\tstate")
        for info in list_tokens(engine):
            if info.revoked_at:
                state = f"revoked {info.revoked_at.isoformat(timespec='seconds')}"
            elif info.expires_at and info.expires_at <= now:
                state = f"expired {info.expires_at.isoformat(timespec='seconds')}"
            elif info.expires_at:
                state = f"expires {info.expires_at.isoformat(timespec='seconds')}"
            else:
                state = "active"
            print(
                f"{info.id}\t{info.role}\t{info.principal}\t{info.name}\t"
                f"{info.created_at.isoformat(timespec='seconds')}\t{state}"
            )
    elif args.action == "invite":
        return _invite(settings, engine, args, now)
    elif args.action == "invitations":
        from infra.invitations import list_invitations

        for inv in list_invitations(engine):
            token = f"\ttoken {inv.token_id}" if inv.token_id is not None else ""
            print(
                f"{inv.id}\t{inv.role}\t{inv.name}\t{inv.state(now)}\t"
                f"expires {inv.expires_at.isoformat()}{token}"
            )
    elif args.action == "revoke-invite":
        from infra.invitations import revoke_invitation

        if not revoke_invitation(engine, args.id, now):
            print(
                f"no unused invitation {args.id} (a used one made a token: "
                "`puhui token invitations` shows it, `puhui token revoke ID` revokes it)",
                file=sys.stderr,
            )
            return 1
        print(f"invitation {args.id} withdrawn")
    else:
        if not revoke_token(engine, args.id, now):
            print(f"no active token {args.id}", file=sys.stderr)
            return 1
        print(f"token {args.id} revoked")
    return 0


def cmd_volunteer(settings: Settings, args: argparse.Namespace) -> int:
    """A volunteer's personal data: export it (JSON on stdout) or erase it (PIPL requests)."""
    from infra.db import make_engine, migrate
    from infra.photos import PhotoStore
    from infra.privacy import erase_volunteer, export_volunteer

    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    actor = f"admin:{getpass.getuser()}"
    if args.action == "export":
        data = export_volunteer(engine, args.id, actor, now)
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    erased = erase_volunteer(
        engine, args.id, actor, now, photos=PhotoStore(settings.resolved_photo_dir())
    )
    print(
        f"erased: {erased.reports} report(s), {erased.photos} photo(s) (files deleted), "
        f"the volunteer's id in {erased.alerts} alert(s) and "
        f"{erased.history} history row(s), {erased.tokens} token(s) revoked; topics keep their "
        f"records until their retention ({settings.report_retention_days:g} days) ends"
    )
    return 0


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def base_url(settings: Settings) -> str:
    """Where a browser on this machine reaches the API (a wildcard bind answers on loopback)."""
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reading the setting, not binding
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def invite_link(base: str, role: str, secret: str) -> str:
    """The sign-in link of an invitation: the console for operators, /field for responders,
    /report for volunteers.
    The secret rides in the fragment, which browsers never send to the server."""
    page = {"operator": "/", "responder": "/field"}.get(role, "/report")
    return f"{base.rstrip('/')}{page}#invite={secret}"


def _invite(settings: Settings, engine, args: argparse.Namespace, now: datetime) -> int:  # type: ignore[no-untyped-def]
    import segno

    from infra.invitations import create_invitation, parse_validity
    from infra.tokens import Role

    try:
        _check_unit(settings, args.role, args.unit)
        valid_for = parse_validity(args.expires_in)
        info, secret = create_invitation(
            engine, args.name, Role(args.role), now, valid_for, unit_id=args.unit
        )
    except ValueError as exc:
        print(f"puhui token invite: {exc}", file=sys.stderr)
        return 2
    link = invite_link(args.base_url or base_url(settings), args.role, secret)
    qr = segno.make(link, error="m")
    png = args.qr or str(settings.state_dir / "invitations" / f"invitation-{info.id}.png")
    path = Path(png)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The picture is the secret: readable by its owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        qr.save(out, kind="png", scale=8, border=4)
    print(
        f"invitation {info.id} for {info.name} ({info.role}), one use, "
        f"valid until {info.expires_at.isoformat(timespec='seconds')}; stored hashed:"
    )
    print(link)
    if not args.no_terminal_qr:
        qr.terminal(out=sys.stdout, compact=True)
    print(f"QR code saved to {path}")
    if not args.base_url and settings.http_host in _LOOPBACK:
        print(
            "note: this link points at this machine's loopback address; for a phone, pass "
            "--base-url with the address phones reach the API at (https:// in production)"
        )
    print(f"withdraw it before use: puhui token revoke-invite {info.id}")
    return 0


def cmd_webhook(settings: Settings, args: argparse.Namespace) -> int:
    """Print a webhook target's signing secret, to hand to the receiver's operator."""
    from alerts.notify import load_bundled_escalation, load_escalation
    from notifier.service import target_secrets

    if settings.webhook_secret is None:
        print("puhui webhook secret: PUHUI_WEBHOOK_SECRET is not set", file=sys.stderr)
        return 2
    config = (
        load_escalation(settings.escalation_file)
        if settings.escalation_file
        else load_bundled_escalation()
    )
    if args.target not in config.targets:
        known = ", ".join(sorted(config.targets))
        print(f"puhui webhook secret: no target {args.target!r} (known: {known})", file=sys.stderr)
        return 2
    try:
        secrets = target_secrets(config, settings.webhook_secret.get_secret_value().encode())
    except ValueError as exc:
        print(f"puhui webhook secret: {exc}", file=sys.stderr)
        return 2
    print(secrets[args.target].decode())
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    """Throughput, latency and memory on a private broker (``tools/bench/``)."""
    from tools.bench import main_bench

    return main_bench(args)


def is_local_default(settings: Settings) -> bool:
    """The out-of-the-box setup: the API on loopback and the SQLite file in the state dir."""
    return settings.http_host in _LOOPBACK and not settings.database_url


def welcome_lines(settings: Settings, now: datetime | None = None) -> list[str]:
    """What ``puhui up`` tells a newcomer once the API answers: the console with a one-time
    sign-in link for a demo operator and the volunteer page with one for a demo volunteer.
    Only on the local default setup; elsewhere it says how to make a link instead."""
    base = base_url(settings)
    if not is_local_default(settings):
        return [
            f"puhui up: console {base}/ , volunteer page {base}/report",
            "puhui up: no demo sign-in links (PUHUI_HTTP_HOST or PUHUI_DATABASE_URL is set, so "
            "this is not the local default); make one with "
            "`puhui token invite --role operator --name NAME`",
        ]
    from infra.db import make_engine
    from infra.invitations import create_invitation
    from infra.tokens import Role

    at = now or datetime.now(UTC)
    engine = make_engine(settings.resolved_database_url())
    try:
        _, operator = create_invitation(
            engine, "演示值班员 demo operator", Role.OPERATOR, at, timedelta(hours=12)
        )
        _, volunteer = create_invitation(
            engine, "演示志愿者 demo volunteer", Role.VOLUNTEER, at, timedelta(hours=12)
        )
    finally:
        engine.dispose()
    return [
        "",
        "puhui up: local default setup, so here are one-time demo sign-in links "
        "(each works once, within 12 h; `puhui token invite` makes more):",
        f"  console (demo operator):         {invite_link(base, 'operator', operator)}",
        f"  volunteer page (demo volunteer): {invite_link(base, 'volunteer', volunteer)}",
        f"  volunteer page, no sign-in yet:  {base}/report",
        "",
    ]


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http URL
            return int(response.status) == 200
    except OSError:
        return False


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Broker + worker + API (+ simulator) in the foreground; Ctrl-C or SIGTERM stops all of it."""
    broker = _broker(settings)
    started_broker = not broker.status().serving
    broker.start()
    provision_components(settings, broker)
    prepare(settings)
    exe = [sys.executable, "-m", "entrypoints.cli"]
    children: list[subprocess.Popen[bytes]] = [
        subprocess.Popen([*exe, "worker"]),
        subprocess.Popen([*exe, "api"]),
    ]
    if not args.no_simulator:
        children.append(
            subprocess.Popen(
                [
                    *exe,
                    "simulate",
                    "--scenario",
                    args.scenario,
                    "--speed",
                    str(args.speed),
                    "--minutes",
                    str(args.minutes),
                ]
            )
        )
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(
        f"puhui up: worker metrics http://{settings.worker_host}:{settings.worker_port}/metrics, "
        f"API http://{settings.http_host}:{settings.http_port}/ — Ctrl-C stops everything",
        flush=True,
    )
    welcome = welcome_lines(settings)
    try:
        while not stopping:
            if welcome and _answers(f"{base_url(settings)}/healthz"):
                print("\n".join(welcome), flush=True)
                welcome = []
            # The simulator may finish; the worker and API must not.
            for child in children[:2]:
                if child.poll() is not None:
                    name = child.args[-1] if isinstance(child.args, list) else child.args
                    print(f"{name!s} exited with {child.returncode}", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if started_broker:
            broker.stop()
        print("puhui up: stopped", flush=True)
    return 0


def _invitable_roles() -> list[Any]:
    from infra.tokens import Role

    return [role for role in Role if role != Role.ADMIN]


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 — the whole command line, declared in one place
    parser = argparse.ArgumentParser(prog="puhui", description="Puhui (浦汇) incident pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the local Apache Kafka broker")
    ksub = kafka.add_subparsers(dest="action", required=True)
    for action in ("start", "stop", "status"):
        ksub.add_parser(action).set_defaults(func=cmd_kafka)
    kclient = ksub.add_parser(
        "client",
        help="create a principal for an outside system (prints its client settings as the last"
        " line, one JSON object) or revoke one",
    )
    kclient.add_argument("--name", help="principal name (a reader's consumer groups start with it)")
    kclient.add_argument(
        "--role",
        choices=["gateway", "reader", "admin"],
        help="gateway: write readings and reports; reader: consume alerts and dead letters;"
        " admin: everything",
    )
    kclient.add_argument("--revoke", metavar="NAME", help="remove the principal and its ACLs")
    kclient.set_defaults(func=cmd_kafka_client)
    kcerts = ksub.add_parser(
        "certs", help="make a CA and a broker certificate in DIR (for a broker elsewhere)"
    )
    kcerts.add_argument("--dir", required=True)
    kcerts.add_argument(
        "--host", action="append", default=[], help="the broker's name or address (repeatable)"
    )
    kcerts.add_argument("--owner", help="UID[:GID] to own the broker's key file (its process)")
    kcerts.set_defaults(func=cmd_kafka_certs)
    kprov = ksub.add_parser(
        "provision",
        help="create the topics and the components' principals and ACLs on a broker elsewhere",
    )
    kprov.add_argument("--notifier-in-api", action="store_true")
    kprov.set_defaults(func=cmd_kafka_provision)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("worker", help="run the Faust worker").set_defaults(func=cmd_worker)
    sub.add_parser("api", help="run the HTTP API").set_defaults(func=cmd_api)
    sub.add_parser(
        "notifier",
        help="run the notifier on its own (with PUHUI_NOTIFIER_IN_API=false on the API)",
    ).set_defaults(func=cmd_notifier)

    def sim_options(p: argparse.ArgumentParser, speed: float) -> None:
        p.add_argument(
            "--scenario",
            default="demo",
            help="day, surge, holiday, fire, fire_report, smoke_false, flood, flaky, dropout, "
            "smoke or demo (see tools/simulator.py SCENARIOS)",
        )
        p.add_argument(
            "--speed",
            type=float,
            default=speed,
            help="times faster than real time; 0 = as fast as possible",
        )
        p.add_argument("--minutes", type=int, default=240, help="minutes of event time")

    simulate = sub.add_parser("simulate", help="produce simulated sensor readings")
    sim_options(simulate, 1.0)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument(
        "--start",
        help="event time of the first reading (default: now, or just after the newest event "
        "time already on the readings topic if that is later)",
    )
    simulate.set_defaults(func=cmd_simulate)

    up = sub.add_parser("up", help="broker + worker + API + simulator in the foreground")
    up.add_argument("--no-simulator", action="store_true")
    sim_options(up, 60.0)
    up.set_defaults(func=cmd_up)

    token = sub.add_parser("token", help="API bearer tokens")
    tsub = token.add_subparsers(dest="action", required=True)
    create = tsub.add_parser("create")
    create.add_argument(
        "--role", required=True, choices=["volunteer", "responder", "operator", "admin"]
    )
    create.add_argument("--name", required=True, help="display name (need not be unique)")
    create.add_argument(
        "--unit", metavar="UNIT_ID", help="responders: the unit they belong to (GET /api/units)"
    )
    create.add_argument(
        "--expires-in", metavar="LIFETIME", help="e.g. 8h, 30m, 7d (default: never expires)"
    )
    create.add_argument(
        "--principal",
        help="a replacement token for the same person: their principal id (see `token list`)",
    )
    tsub.add_parser("list")
    revoke = tsub.add_parser("revoke")
    revoke.add_argument("id", type=int)
    invite = tsub.add_parser(
        "invite", help="a one-time sign-in link and QR code that becomes a token on first use"
    )
    invite.add_argument("--role", required=True, choices=[r.value for r in _invitable_roles()])
    invite.add_argument("--name", required=True)
    invite.add_argument("--unit", metavar="UNIT_ID", help="responders: their unit (GET /api/units)")
    invite.add_argument(
        "--expires-in", default="7d", help="unused, the link expires after this (30m, 48h, 7d)"
    )
    invite.add_argument(
        "--base-url", help="the address phones reach the API at (default: the local API)"
    )
    invite.add_argument("--qr", help="PNG file for the QR code (default in the state dir)")
    invite.add_argument("--no-terminal-qr", action="store_true", help="print the link only")
    tsub.add_parser("invitations", help="every invitation and what became of it")
    uninvite = tsub.add_parser("revoke-invite", help="withdraw an unused invitation")
    uninvite.add_argument("id", type=int)
    token.set_defaults(func=cmd_token)

    volunteer = sub.add_parser(
        "volunteer", help="a volunteer's personal data: export or erase it (admin)"
    )
    vsub = volunteer.add_subparsers(dest="action", required=True)
    for action, what in (("export", "print as JSON"), ("erase", "erase everywhere stored")):
        p = vsub.add_parser(action, help=f"{what} everything about a volunteer")
        p.add_argument("id", help="the volunteer's id (their reports' reporter_id)")
    volunteer.set_defaults(func=cmd_volunteer)
    webhook = sub.add_parser("webhook", help="webhook receivers")
    wsub = webhook.add_subparsers(dest="action", required=True)
    wsecret = wsub.add_parser("secret", help="print a target's signing secret (for its receiver)")
    wsecret.add_argument("target", help="a target name of the escalation policy")
    webhook.set_defaults(func=cmd_webhook)

    from tools.bench import add_arguments as bench_arguments

    bench = sub.add_parser("bench", help="throughput, alert latency and memory, measured")
    bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
