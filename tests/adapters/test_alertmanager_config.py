"""The Alertmanager configuration passes ``amtool check-config``, routes every alerting rule by
its team and severity, and its inhibitions name alerts that exist.

amtool comes with Debian's ``prometheus-alertmanager`` package (``infra/scripts/prereqs.sh
--test`` installs it). Without it these tests fail: they never skip. The real delivery path
(Prometheus → Alertmanager → a webhook receiver) is tests/integration/test_alertmanager.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "infra" / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))
#: Who is paged for what: team ops, by severity.
RECEIVERS = {"critical": "ops-critical", "warning": "ops-warning"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    assert exe, (
        "amtool is missing: run `bash infra/scripts/prereqs.sh --test` "
        "(Debian: prometheus-alertmanager)"
    )
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def route(*labels: str) -> str:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_check_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_reaches_its_team_by_severity(rule: dict[str, Any]) -> None:
    labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
    assert route(*labels) == RECEIVERS[rule["labels"]["severity"]]


def test_an_alert_without_a_team_still_reaches_someone() -> None:
    assert route("alertname=SomethingElse", "severity=critical") == "unrouted"


def test_the_receivers_are_webhooks_without_credentials_in_their_urls() -> None:
    config = load(CONFIG)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert set(RECEIVERS.values()) | {"unrouted"} == set(receivers)
    for receiver in receivers.values():
        [webhook] = receiver["webhook_configs"]
        assert webhook["send_resolved"] is True
        assert "@" not in webhook["url"] and "?" not in webhook["url"], webhook["url"]


def test_inhibitions_name_alerts_that_exist_and_follow_docs_ops() -> None:
    names = {rule["alert"] for rule in alerts()}
    config = load(CONFIG)
    pairs: set[tuple[str, str]] = set()
    for inhibit in config["inhibit_rules"]:
        [source] = inhibit["source_matchers"]
        [target] = inhibit["target_matchers"]
        source_name = re.fullmatch(r'alertname="(\w+)"', source)
        target_names = re.fullmatch(r'alertname=~?"([\w|]+)"', target)
        assert source_name and target_names, inhibit
        for name in target_names.group(1).split("|"):
            pairs.add((source_name.group(1), name))
        assert inhibit["equal"], "an inhibition without `equal` silences across the board"
    assert {name for pair in pairs for name in pair} <= names
    # The inhibition docs/ops.md recommends.
    assert {
        ("PuhuiWorkerDown", "PuhuiZoneSilent"),
        ("PuhuiWorkerDown", "PuhuiConsumerLagGrowing"),
        ("PuhuiWorkerDown", "PuhuiAlertLatencyHigh"),
    } <= pairs
