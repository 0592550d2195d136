"""Operators' commands in the zone engine: acknowledge, assign, resolve the open (or latched)
alert a command names; a repeated command id does nothing (:class:`Outcome`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from alerts.zone.alert import operator_action
from alerts.zone.keys import Outcome, is_report_key
from alerts.zone.state import ZoneState, remember_id
from alerts.zone.times import to_epoch
from models.contracts import AlertCommand, AlertRecord, AlertStatus, Change, CommandAction

_ACTION_CHANGES = {
    CommandAction.ACKNOWLEDGE: Change.ACKNOWLEDGED,
    CommandAction.ASSIGN: Change.ASSIGNED,
    CommandAction.RESOLVE: Change.RESOLVED,
}


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What a command did: ``applied`` with its record, or why not (``duplicate``,
    ``not_open`` — the alert is resolved or unknown here)."""

    outcome: Outcome
    record: AlertRecord | None = None


def apply_command(state: ZoneState, command: AlertCommand) -> CommandOutcome:
    """Apply an operator's command to the zone's open alert it names (in place)."""
    if not remember_id(state, command.command_id, to_epoch(command.issued_at)):
        return CommandOutcome(Outcome.DUPLICATE)
    for key, alert in state.alerts.items():
        if alert.alert_id == command.alert_id:
            new, record = operator_action(
                alert,
                _ACTION_CHANGES[command.action],
                command.issued_at,
                command.actor,
                command.note,
                command.assignee,
                command.note_public,
            )
            if new is None:
                del state.alerts[key]
                if is_report_key(key):
                    state.report_log.pop(key, None)
                else:
                    final = replace(
                        alert,
                        status=AlertStatus.RESOLVED,
                        revision=record.revision,
                        acknowledged_by=record.acknowledged_by,
                        acknowledged_at=record.acknowledged_at,
                    )
                    state.closed[key] = (to_epoch(command.issued_at), final)
            else:
                state.alerts[key] = new
            return CommandOutcome(Outcome.APPLIED, record)
    latched = state.latched.get(command.alert_id)
    if latched is not None and command.action == CommandAction.ACKNOWLEDGE:
        _, record = operator_action(
            latched,
            Change.ACKNOWLEDGED,
            command.issued_at,
            command.actor,
            command.note,
            note_public=command.note_public,
        )
        del state.latched[command.alert_id]
        return CommandOutcome(Outcome.APPLIED, record)
    return CommandOutcome(Outcome.NOT_OPEN)
