"""Deprecated: the alert state machine moved to :mod:`alerts.zone.alert`. These names are
re-exported for one release so callers written against the old path keep working."""

from __future__ import annotations

from alerts.zone.alert import (
    ALERT_ID_NAMESPACE,
    DEFAULT_HOLD,
    KEPT_IDS,
    AlertState,
    Assessment,
    alert_id_for,
    amend,
    corroborate,
    join_report,
    operator_action,
    peak_of,
    reopen,
    transition,
)

__all__ = [
    "ALERT_ID_NAMESPACE",
    "DEFAULT_HOLD",
    "KEPT_IDS",
    "AlertState",
    "Assessment",
    "alert_id_for",
    "amend",
    "corroborate",
    "join_report",
    "operator_action",
    "peak_of",
    "reopen",
    "transition",
]
