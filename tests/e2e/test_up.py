"""`make run`'s `puhui up`: the whole stack from one command, its simulator's alerts on the topic
and in the database, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.parts import REPO, consume, free_port, register_broker

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def get(url: str) -> int:
    try:
        return int(urllib.request.urlopen(url, timeout=5).status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def wait_for_links(log: Path, timeout: float = 60) -> dict[str, str]:
    """The console's and the volunteer page's sign-in links ``puhui up`` prints."""
    deadline = time.monotonic() + timeout
    while True:
        found = dict(
            re.findall(r"^  (console|volunteer page) \(demo \w+\): +(\S+)$", log.read_text(), re.M)
        )
        if len(found) == 2 or time.monotonic() > deadline:
            assert len(found) == 2, log.read_text()[-3000:]
            return found
        time.sleep(0.3)


def open_links(links: dict[str, str]) -> None:
    """Each link signs a fresh browser in once; the console's, opened again, is refused."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS, PHONE

    assert "#invite=phi_" in links["console"] and "/report#invite=phi_" in links["volunteer page"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            console = browser.new_context().new_page()
            console.goto(links["console"])
            expect(console.locator("#app")).to_be_visible(timeout=20_000)
            expect(console.locator("#whoami")).to_contain_text("demo operator")
            volunteer = browser.new_context(**PHONE).new_page()
            volunteer.goto(links["volunteer page"])
            expect(volunteer.locator("#view-new")).to_be_visible(timeout=20_000)
            again = browser.new_context().new_page()
            again.goto(links["console"])
            expect(again.locator("#login-error")).to_contain_text("已使用过", timeout=20_000)
        finally:
            browser.close()


def test_up_runs_the_stack_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, http, metrics = free_port(), free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")},
        "PUHUI_KAFKA_BOOTSTRAP": bootstrap,
        "PUHUI_KAFKA_CONTROLLER_PORT": str(free_port()),
        "PUHUI_STATE_DIR": str(tmp_path / "state"),
        "PUHUI_HTTP_PORT": str(http),
        "PUHUI_WORKER_PORT": str(metrics),
    }
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrypoints.cli",
            "up",
            "--scenario",
            "surge",
            "--speed",
            "0",
            "--minutes",
            "90",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pids: set[int] = set()
    try:
        # `puhui up` makes a SASL_SSL broker with its own CA and passwords under the state dir;
        # the test reads the alerts as that broker's super user.
        from infra.broker import KafkaBroker

        broker = KafkaBroker(
            tmp_path / "state",
            bootstrap=bootstrap,
            controller_port=int(env["PUHUI_KAFKA_CONTROLLER_PORT"]),
        )
        deadline = time.monotonic() + 120
        while not broker.security_files.client_file.exists() and time.monotonic() < deadline:
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(0.2)
        register_broker(broker)
        from infra.kafka_admin import wait_for_metadata

        wait_for_metadata(broker.client(), timeout=120)
        # Wait for the surge's crowding alert itself: the volunteers' report alerts (another topic,
        # other partitions) may come first, however many records that makes.
        msgs = consume(
            bootstrap,
            "puhui.alerts",
            timeout=180,
            until=lambda ms: any(json.loads(m.value)["risk"] == "crowding" for m in ms),
        )
        records = [json.loads(m.value) for m in msgs]
        assert "crowding" in {r["risk"] for r in records}
        assert all(r["zone_id"].startswith("tianzifang-taikang-") for r in records)

        engine = create_engine(f"sqlite:///{tmp_path / 'state' / 'puhui.db'}")
        deadline = time.monotonic() + 30
        rows = 0
        while time.monotonic() < deadline and rows < 3:
            with engine.connect() as conn:
                rows = conn.execute(text("select count(*) from alert_history")).scalar_one()
            time.sleep(0.5)
        engine.dispose()
        assert rows >= 3

        deadline = time.monotonic() + 30
        while get(f"http://127.0.0.1:{http}/readyz") != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert get(f"http://127.0.0.1:{http}/readyz") == 200
        assert get(f"http://127.0.0.1:{metrics}/metrics") == 200

        # It tells a newcomer where to go, with one-time sign-in links that work.
        links = wait_for_links(tmp_path / "up.log")
        assert "local default" in (tmp_path / "up.log").read_text()
        open_links(links)

        pids = descendants(up.pid)
        broker_pid = int((tmp_path / "state" / "kafka" / "kafka.pid").read_text().split()[0])
        pids.add(broker_pid)
        assert len(pids) >= 3  # worker, API, broker (the simulator may have finished)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
        log.close()
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    time.sleep(0.5)
    left = {pid for pid in pids if alive(pid)}
    assert not left, f"still running after Ctrl-C: {left}"
