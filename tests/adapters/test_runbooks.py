"""Every alerting rule links to its runbook: ``annotations.runbook_url`` is
``docs/runbooks.md#<anchor>``, the anchor is a heading of docs/runbooks.md (GitHub's slugs), and
that section answers the four questions (what it means, what to check, what to do, how to
silence it safely)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks.md"
RULE_FILES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))
QUESTIONS = ("**What it means.**", "**What to check.**", "**What to do.**", "**How to silence")


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections() -> dict[str, str]:
    """Anchor → the section's text (up to the next heading of the same or a higher level)."""
    found: dict[str, str] = {}
    anchor: str | None = None
    lines: list[str] = []
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,3} (.+)", line):
            if anchor is not None:
                found[anchor] = "\n".join(lines)
            anchor, lines = slug(match.group(1)), []
        else:
            lines.append(line)
    if anchor is not None:
        found[anchor] = "\n".join(lines)
    return found


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("PuhuiWorkerDown", "puhuiworkerdown"),
        ("Silencing, in general", "silencing-in-general"),
        ("Runbooks 处置手册", "runbooks-处置手册"),
    ],
)
def test_slug(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_there_are_alerts() -> None:
    assert len(alerts()) >= 10


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_links_to_its_runbook_section(rule: dict[str, Any]) -> None:
    url = rule["annotations"].get("runbook_url")
    assert url, f"{rule['alert']} has no runbook_url"
    path, _, anchor = url.partition("#")
    assert (REPO / path).resolve() == RUNBOOKS, url
    runbook = sections()
    assert anchor in runbook, f"{url}: no such heading in docs/runbooks.md"
    assert anchor == rule["alert"].lower(), "one section per alert, named after it"
    text = runbook[anchor]
    assert [q for q in QUESTIONS if q not in text] == [], f"{url} misses a question"


def test_every_runbook_section_is_an_alert() -> None:
    names = {rule["alert"].lower() for rule in alerts()}
    alert_sections = {anchor for anchor in sections() if anchor.startswith("puhui")}
    assert alert_sections == names
