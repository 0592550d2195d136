"""The worker's web server: bound to ``PUHUI_WORKER_HOST`` for real, serving /metrics and the
status page only — Faust's table and router endpoints (a zone's whole state, volunteers' names
included) are 404."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.parts import Worker

pytestmark = pytest.mark.integration

ZONE = "tianzifang-taikang-210"


def listening(port: int) -> set[str]:
    """The IPv4/IPv6 addresses a socket listens on at ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            address, port_hex = local.split(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            if family == socket.AF_INET:
                raw = raw[::-1]  # little-endian 32-bit word
            else:
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_worker_listens_on_the_configured_host_and_serves_no_table(
    make_worker: Callable[..., Worker],
) -> None:
    # 127.0.0.2 is loopback too, but not Faust's default (0.0.0.0) nor the usual 127.0.0.1:
    # only a worker that really binds PUHUI_WORKER_HOST listens there.
    worker = make_worker(PUHUI_WORKER_HOST="127.0.0.2")
    port = int(worker.env["PUHUI_WORKER_PORT"])
    assert listening(port) == {"127.0.0.2"}, worker.tail()

    base = f"http://127.0.0.2:{port}"
    assert status(f"{base}/metrics") == 200
    assert status(f"{base}/") == 200
    assert status(f"{base}/healthz") == 200
    for path in (
        f"/table/zone-state/{ZONE}/",
        "/table/zone-state/",
        "/table/",
        "/router/",
        f"/router/zone-state/{ZONE}/",
        "/graph/",
        "/assignment/",
        "/performance/",
    ):
        assert status(base + path) == 404, path
