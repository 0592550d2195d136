"""Names the zone engine gives things: the key of a zone's open alert, a command's outcome."""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

from models.contracts import ReportCategory, Risk

#: The key of an open alert in a zone's state: a sensor risk's value (``"gas"``), or
#: ``"report:<category>"`` for the alert volunteer reports of one category open. Keys are stored
#: as they are in the table, so their spelling is part of the state's format.
AlertKey = NewType("AlertKey", str)

_REPORT_PREFIX = "report:"


def risk_key(risk: Risk) -> AlertKey:
    """The key of a sensor risk's alert."""
    return AlertKey(risk.value)


def report_key(category: ReportCategory) -> AlertKey:
    """The key of the alert the reports of ``category`` open (one per category and zone)."""
    return AlertKey(_REPORT_PREFIX + category.value)


def is_report_key(key: str) -> bool:
    """Whether ``key`` names a report alert (not a sensor risk's)."""
    return key.startswith(_REPORT_PREFIX)


class Outcome(StrEnum):
    """What an operator's command did (the ``outcome`` label of ``puhui_commands_total``)."""

    APPLIED = "applied"  # to the open (or latched) alert it names: one alert record
    DUPLICATE = "duplicate"  # its command id was handled before: nothing
    NOT_OPEN = "not_open"  # the alert is resolved or unknown in this zone: nothing
