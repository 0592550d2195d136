"""The zone state's stored form: a JSON object with a format version ``v``.

``ZoneState.to_dict`` writes the current version; ``ZoneState.from_dict`` passes what it reads
through :func:`upgrade` first, so a changelog written by an older worker is read by a newer one.
Add a version by bumping :data:`STATE_VERSION` and adding one step to :func:`upgrade`.
"""

from __future__ import annotations

from typing import Any

#: The format ``to_dict`` writes.
STATE_VERSION = 1


class UnknownStateVersion(ValueError):
    """A state written by a newer worker than this one (its format is not known here)."""


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` in the current format (a new dict; ``data`` is not changed).

    Version 0 is the format before versions were written (no ``v``); it lacked, in its earliest
    form, the keys added later with a default (``sample_source``, ``pending_reports``,
    ``latched``, ``closed``). Version 1 has them all.
    """
    version = data.get("v", 0)
    if not isinstance(version, int) or version < 0:
        raise UnknownStateVersion(f"zone state: bad format version {version!r}")
    if version > STATE_VERSION:
        raise UnknownStateVersion(
            f"zone state: format version {version} is newer than this worker's ({STATE_VERSION})"
        )
    out = dict(data)
    if version == 0:
        out.setdefault("sample_source", "")
        out.setdefault("pending_reports", [])
        out.setdefault("latched", {})
        out.setdefault("closed", {})
        out["alerts"] = {k: _alert_v0(a) for k, a in out["alerts"].items()}
        out["latched"] = {k: _alert_v0(a) for k, a in out["latched"].items()}
        out["closed"] = {k: [at, _alert_v0(a)] for k, (at, a) in out["closed"].items()}
        out["v"] = 1
    return out


#: An alert's keys added after the first format, with the value an older state means.
_ALERT_DEFAULTS_V0: dict[str, Any] = {
    "assignee": None,
    "inhibited": False,
    "acknowledged_by": None,
    "acknowledged_at": None,
    "latched": False,
    "peak": None,
}


def _alert_v0(alert: dict[str, Any]) -> dict[str, Any]:
    return {**_ALERT_DEFAULTS_V0, **alert}
