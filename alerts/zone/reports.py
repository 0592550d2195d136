"""Volunteer reports in the zone engine: a report corroborates an open sensor alert of its risk,
or opens / joins the ``report`` alert of its category; reports wait for the zone's sensor clock
(:func:`release_reports`). The entry point is :func:`alerts.zone.step.process_report`."""

from __future__ import annotations

from dataclasses import replace

from alerts.config import ZoneRules
from alerts.zone.alert import Assessment, amend, corroborate, join_report, transition
from alerts.zone.assessors import inhibitor, step_risk
from alerts.zone.keys import report_key, risk_key
from alerts.zone.state import ZoneState
from alerts.zone.times import from_epoch, to_epoch
from alerts.zone.wording import CATEGORY_ZH
from models.contracts import (
    AlertRecord,
    Change,
    Level,
    ReportCategory,
    Risk,
    Summary,
    VolunteerReport,
)
from models.zones import Zone

_CATEGORY_RISK: dict[ReportCategory, Risk] = {
    ReportCategory.FIRE: Risk.FIRE,
    ReportCategory.SMOKE: Risk.FIRE,
    ReportCategory.CROWDING: Risk.CROWDING,
    ReportCategory.GAS: Risk.GAS,
    ReportCategory.ELECTRICAL: Risk.ELECTRICAL,
    ReportCategory.FLOODING: Risk.FLOODING,
    ReportCategory.MANHOLE: Risk.MANHOLE,
    ReportCategory.FIRE_LANE: Risk.FIRE_LANE,
    ReportCategory.EBIKE: Risk.EBIKE,
}


def release_reports(
    state: ZoneState, zone: Zone, rules: ZoneRules, upto: float
) -> tuple[list[AlertRecord], list[tuple[VolunteerReport, str | None]]]:
    """Handle the waiting reports whose time is at or before ``upto`` (oldest first)."""
    records: list[AlertRecord] = []
    linked: list[tuple[VolunteerReport, str | None]] = []
    while state.pending_reports:
        report = VolunteerReport.model_validate(state.pending_reports[0])
        if to_epoch(report.submitted_at) > upto:
            break
        state.pending_reports.pop(0)
        out, alert_id = apply_report(state, report, zone, rules)
        records.extend(out)
        linked.append((report, alert_id))
    return records, linked


def apply_report(
    state: ZoneState, report: VolunteerReport, zone: Zone, rules: ZoneRules
) -> tuple[list[AlertRecord], str | None]:
    at = to_epoch(report.submitted_at)
    # Reports do not move the zone's clock: that is the sensors' event time.
    risk = _CATEGORY_RISK.get(report.category)
    records: list[AlertRecord] = []
    if risk == Risk.FIRE:
        state.fire_reports = [*state.fire_reports[-19:], at]
    sensor_alert = state.alerts.get(risk_key(risk)) if risk is not None else None
    if risk is not None and sensor_alert is not None:
        if risk == Risk.FIRE:
            records.extend(step_risk(state, zone, rules, Risk.FIRE, at, report.report_id))
            sensor_alert = state.alerts[risk_key(Risk.FIRE)]
        new, record = corroborate(
            sensor_alert, from_epoch(at), report.report_id, report.reporter_id
        )
        state.alerts[risk_key(risk)] = new
        if record is not None:
            records.append(record)
        return records, new.alert_id

    key = report_key(report.category)
    window = rules.reports.merge_window_seconds
    log = [e for e in state.report_log.get(key, []) if e[0] > at - window]
    log.append((at, report.reporter_id, report.report_id))
    state.report_log[key] = log
    in_window = len({e[1] for e in log})
    base = Level(rules.reports.levels[report.category])
    level = base
    if in_window >= rules.reports.escalate_reporters:
        level = _one_up(base)
    current = state.alerts.get(key)
    # Counts and the latest ids only; the volunteer's words stay with the report (PIPL: they go
    # where they are needed — the operators' view of the report — not into every alert record).
    evidence, new_reporter = join_report(
        {"category": report.category.value} if current is None else current.evidence,
        report.report_id,
        report.reporter_id,
    )
    summary = Summary(
        zh=f"{zone.name.zh} 志愿者报告：{CATEGORY_ZH[report.category]}"
        f"（{in_window} 人报告，{level.zh}色）",
        en=f"Volunteer report at {zone.name.en}: {report.category.value} "
        f"({in_window} reporter(s), {level.value})",
    )
    if current is None:
        blocker = inhibitor(state, rules, Risk.REPORT) if level != Level.RED else None
        assessment = Assessment(
            zone.id,
            Risk.REPORT,
            level,
            from_epoch(at),
            report.report_id,
            evidence,
            summary,
            inhibited_by=blocker,
        )
        new_state, out = transition(None, assessment, rules.hold)
        assert new_state is not None
        state.alerts[key] = new_state
        records.extend(out)
        return records, new_state.alert_id
    if level.rank > current.level.rank:
        assessment = Assessment(
            zone.id, Risk.REPORT, level, from_epoch(at), report.report_id, evidence, summary
        )
        new_state, out = transition(current, assessment, rules.hold)
        assert new_state is not None
        state.alerts[key] = new_state
        records.extend(out)
        return records, new_state.alert_id
    if new_reporter:
        # Another volunteer saw it too: one revision, nobody paged again (same level).
        amended, record = amend(current, Change.CORROBORATED, from_epoch(at), evidence, summary)
        state.alerts[key] = amended
        records.append(record)
        return records, current.alert_id
    # The same volunteer again: the counts grow (carried by the next revision), no revision.
    state.alerts[key] = replace(current, evidence=evidence)
    return records, current.alert_id


def _one_up(level: Level) -> Level:
    order = sorted(Level, key=lambda lvl: lvl.rank)
    return order[min(level.rank, len(order) - 1)]
