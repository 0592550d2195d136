"""The Prometheus configuration and rules pass promtool, and every alert is tested both ways.

promtool comes with Debian's ``prometheus`` package (``infra/scripts/prereqs.sh --test`` installs
it). Without it these tests fail: they never skip.
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
PROMETHEUS_DIR = REPO / "infra" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "summary_zh", "description", "description_zh", "runbook_url"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, (
        "promtool is missing: run `bash infra/scripts/prereqs.sh --test` (Debian: prometheus)"
    )
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for g in load(path)["groups"] for rule in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_there_are_rules_and_rule_tests() -> None:
    assert RULE_FILES, "no rule files in infra/prometheus/rules"
    assert RULE_TESTS, "no promtool rule tests in infra/prometheus/tests"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_as_shipped() -> None:
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_with_the_rules(tmp_path: Path) -> None:
    """The shipped config with its rule_files pointed at the repo, as compose mounts them."""
    config = load(CONFIG)
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    for rule_file in RULE_FILES:
        assert rule_file.name in result.stdout, result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names, "no alerting rules"
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_tested() -> None:
    tested = {
        name
        for path in RULE_TESTS
        for case in load(path)["tests"]
        for check in case.get("promql_expr_test", [])
        for name in re.findall(r"[a-zA-Z_:][\w:]*", check["expr"])
    }
    untested = [
        rule["record"] for rule in rules() if "record" in rule and rule["record"] not in tested
    ]
    assert untested == []


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alerts_have_severity_for_and_bilingual_annotations(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Puhui")
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["team"] == "ops"
    assert rule.get("for"), "an alert without `for:` pages on one bad scrape"
    assert set(rule["annotations"]) == ANNOTATIONS
    for key in ("summary_zh", "description_zh"):
        assert any("\u4e00" <= ch <= "\u9fff" for ch in rule["annotations"][key]), key


def test_docs_ops_describes_every_rule() -> None:
    text = (REPO / "docs" / "ops.md").read_text(encoding="utf-8")
    names = [rule.get("record") or rule["alert"] for rule in rules()]
    assert [name for name in names if f"`{name}" not in text] == []
