"""Which safety events raise an alert: `evaluate_alerts(lake)`, read from the internal safety marts.

One alert per source row, each with a stable dedupe key:

    kind                   source mart, rows                                  dedupe key                  priority
    serious_adverse_event  adverse_events: serious or seriousness criteria,   serious_ae:<ae_key>         urgent
                           any origin
    severe_bp_breach       threshold_breaches: severe_bp_sustained,           breach:<session>:<rule>     high
                           severe_bp_single
    suicidality_flag       suicidality_flags positive, C-SSRS high risk       suicidality:<qr>:<rule>     urgent
    suicidality_flag       suicidality_flags positive, PHQ-9 item 9 >= cut    same                        high
    suicidality_unknown    suicidality_flags unknown (answer missing)         same                        review

Unknown suicidality answers alert by default (`include_unknown=True`): DOMAIN.md and the suicidality rules
say an unanswered item is never read as "no risk", so a safety officer must see it, at the lowest priority.
Every positive flag alerts, treatment-emergent or not: PHQ-9 item 9 >= 1 asks for a same-day review whatever
the baseline (the message says whether the answer is worse than the patient's baseline).

Returned: the alerts not yet delivered on every channel (new ones, and known pending ones with their first
reference and raise time). Patients are named by the marts' pseudonymous token; a patient the marts gave no
token yet (not expected: the marts tokenise every event's patient) gets one from the same lookup.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import pandas as pd

from clinic_pipeline.alerts import model
from clinic_pipeline.alerts.ledger import AlertLedger
from clinic_pipeline.alerts.model import SafetyAlert
from clinic_pipeline.lake import Lake

log = logging.getLogger("clinic_pipeline.alerts")

SEVERE_BP_RULES = ("severe_bp_sustained", "severe_bp_single")
PSEUDONYMS = ("state", "pseudonyms.parquet")
SESSION_COLUMNS = ["session_id", "patient_id", "clinic_id", "protocol", "infusion_number", "started_at"]
CSSRS_RULE, PHQ9_RULE = "cssrs_high_risk", "phq9_item9"


def evaluate_alerts(
    lake: Lake,
    *,
    breach_rules: Iterable[str] = SEVERE_BP_RULES,
    include_unknown: bool = True,
    include_sent: bool = False,
    now: dt.datetime | None = None,
) -> list[SafetyAlert]:
    """Alerts for every serious AE, severe BP breach and suicidality flag in the marts (see module doc).

    Deterministic order: priority, clinic, then dedupe key. `include_sent=True` also returns delivered ones.
    """
    raised_at = _iso(now or dt.datetime.now(dt.UTC))
    marts = {name: _read_mart(lake, name) for name in ("adverse_events", "threshold_breaches", "suicidality_flags")}
    sessions = _read_mart(lake, "session_safety")
    if all(frame.empty for frame in marts.values()):
        log.info("safety alerts: no adverse events, breaches or flags in the marts")
    marts = {
        "adverse_events": serious_events(marts["adverse_events"]),
        "threshold_breaches": _rows_where(marts["threshold_breaches"], "rule", set(breach_rules)),
        "suicidality_flags": _rows_where(
            marts["suicidality_flags"], "flag_kind", {"positive", "unknown"} if include_unknown else {"positive"}
        ),
    }
    context = SessionContext.build(lake, sessions, marts)
    alerts = [
        *serious_event_alerts(marts["adverse_events"], context),
        *breach_alerts(marts["threshold_breaches"], context),
        *suicidality_alerts(marts["suicidality_flags"], context),
    ]
    ledger = AlertLedger.load(lake)
    out = []
    for alert in alerts:
        known = ledger.get(alert.dedupe_key)
        if known is not None:
            if known["status"] == "sent" and not include_sent:
                continue
            alert.alert_ref, alert.raised_at = str(known["alert_ref"]), str(known["raised_at"])
        else:
            alert.alert_ref, alert.raised_at = model.new_alert_ref(), raised_at
        out.append(alert)
    out.sort(key=lambda a: (model.PRIORITY_RANK[a.priority], a.clinic_id, a.dedupe_key))
    return out


# --- context: tokens, infusion numbers, course days ------------------------------------------------------


class SessionContext:
    """Per session: patient, clinic, protocol, infusion number, start, course day; per patient: token."""

    def __init__(self, sessions: pd.DataFrame, tokens: pd.Series, days: pd.Series) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.days = days

    @classmethod
    def build(cls, lake: Lake, sessions: pd.DataFrame, marts: dict[str, pd.DataFrame]) -> SessionContext:
        from clinic_pipeline.safety.staged_tables import read_staged
        from transforms.safety import listings, pseudonyms

        columns = [
            "session_id",
            "patient_id",
            "clinic_id",
            "protocol",
            "infusion_number",
            "started_at",
            "session_staged",
        ]
        frame = sessions[columns].drop_duplicates("session_id") if not sessions.empty else pd.DataFrame(columns=columns)
        frame = frame.set_index("session_id", drop=False)
        needed = set(marts["adverse_events"].get("patient_id", pd.Series(dtype=object)).dropna())
        needed |= set(marts["suicidality_flags"].get("patient_id", pd.Series(dtype=object)).dropna())
        breach_sessions = marts["threshold_breaches"].get("session_id", pd.Series(dtype=object))
        needed |= set(frame["patient_id"].reindex(breach_sessions.dropna().unique()).dropna())
        path = lake.path(*PSEUDONYMS)
        lookup = pd.read_parquet(str(path)) if path.exists() else pd.DataFrame()
        lookup, added = pseudonyms.assign_tokens(lookup, sorted(str(p) for p in needed))
        if added:  # the marts tokenise every event's patient: this is a safety net, logged
            log.warning("safety alerts: %d patient(s) had no pseudonymous token yet: tokens added", added)
            lake.write_parquet(path, lookup)
        tokens = lookup.set_index("patient_id")["patient_token"]
        if frame.empty:
            days = pd.Series(dtype="Int64")
        else:
            started = frame.assign(started_at=pd.to_datetime(frame["started_at"], utc=True)).reset_index(drop=True)
            days = listings.course_days(started, read_staged(lake, "patients"), read_staged(lake, "clinics"))
        return cls(frame, tokens, days)

    def session(self, session_id: object, column: str) -> object:
        if not isinstance(session_id, str) or session_id not in self.sessions.index:
            return None
        return _plain(self.sessions.at[session_id, column])

    def staged(self, session_id: object) -> bool:
        """The session's EHR record is staged (else it is late, or held in quarantine)."""
        return bool(self.session(session_id, "session_staged"))

    def token(self, patient_id: object) -> str:
        value = self.tokens.get(str(patient_id)) if isinstance(patient_id, str) else None
        return str(value) if value is not None and not pd.isna(value) else "unknown"

    def day(self, session_id: object) -> int | None:
        value = self.days.get(session_id) if isinstance(session_id, str) else None
        return None if value is None or pd.isna(value) else int(value)

    def minutes(self, session_id: object, at: object) -> float | None:
        start = self.session(session_id, "started_at")
        if start is None or at is None or pd.isna(at):
            return None
        return round((pd.Timestamp(at) - pd.Timestamp(start)).total_seconds() / 60.0, 1)


# --- the three sources -------------------------------------------------------------------------------------


def serious_events(events: pd.DataFrame) -> pd.DataFrame:
    """Adverse events marked serious, or with a seriousness criterion, whatever their origin."""
    if events.empty:
        return events
    criteria = events["seriousness_criteria"].fillna("").astype(str).str.strip()
    return events.loc[events["serious"].astype("boolean").fillna(False).astype(bool) | (criteria != "")]


def serious_event_alerts(events: pd.DataFrame, context: SessionContext) -> list[SafetyAlert]:
    """One urgent alert per row of `serious_events(adverse_events mart)`."""
    alerts = []
    for row in events.to_dict("records"):
        grade = _plain(row.get("ctcae_grade"))
        details = {
            "origin": str(row["origin"]),
            "seriousness criteria": str(row.get("seriousness_criteria") or "not given"),
            "CTCAE grade": f"v{row['ctcae_version']} G{grade}" if grade is not None else "not graded",
            "relatedness": str(row.get("relatedness") or ""),
            "action taken": str(row.get("action_taken") or ""),
            "outcome": str(row.get("outcome") or ""),
        }
        minutes = _plain(row.get("onset_minutes_from_start"))
        alerts.append(
            SafetyAlert(
                dedupe_key=f"serious_ae:{row['ae_key']}",
                kind=model.SERIOUS_AE,
                priority=model.URGENT,
                clinic_id=str(row["clinic_id"]),
                patient_token=context.token(row["patient_id"]),
                event=f"Serious adverse event: {row['term_label']}",
                term_or_rule=str(row["term"]),
                protocol=str(row.get("protocol") or "unknown"),
                infusion_number=_int(row.get("infusion_number")),
                course_day=context.day(row["session_id"]),
                minutes_from_start=None if minutes is None else round(float(minutes), 1),
                details=details,
                occurred_at=_iso(_start_plus(context.session(row["session_id"], "started_at"), minutes)),
            )
        )
    return alerts


def breach_alerts(breaches: pd.DataFrame, context: SessionContext) -> list[SafetyAlert]:
    """One high-priority alert per (session, rule) row of the threshold_breaches mart (rules filtered)."""
    alerts = []
    for row in breaches.to_dict("records"):
        session_id = row["session_id"]
        first, confirmed = _plain(row.get("first_minutes_from_start")), _plain(row.get("confirmed_minutes_from_start"))
        details = {
            "reading": f"{row['value']} mmHg" if "/" in str(row["value"]) else str(row["value"]),
            "readings in the run": str(_int(row.get("run_readings"))),
            "breach started": "unknown" if first is None else f"{float(first):+g} min from the start of dosing",
        }
        if not context.staged(session_id):
            details["note"] = (
                "the session's EHR record is not staged (late or held in quarantine): infusion number unknown, "
                "minutes as the monitor reported them"
            )
        alerts.append(
            SafetyAlert(
                dedupe_key=f"breach:{session_id}:{row['rule']}",
                kind=model.SEVERE_BP,
                priority=model.HIGH,
                clinic_id=str(context.session(session_id, "clinic_id") or "unknown"),
                patient_token=context.token(context.session(session_id, "patient_id")),
                event="Severe blood pressure (" + str(row["rule"]).replace("_", " ") + ")",
                term_or_rule=str(row["rule"]),
                protocol=str(context.session(session_id, "protocol") or row.get("rules_key") or "unknown"),
                infusion_number=_int(context.session(session_id, "infusion_number")),
                course_day=context.day(session_id),
                minutes_from_start=None if confirmed is None else round(float(confirmed), 1),
                details=details,
                occurred_at=_iso(row.get("confirmed_observed_at")),
            )
        )
    return alerts


def suicidality_alerts(flags: pd.DataFrame, context: SessionContext) -> list[SafetyAlert]:
    """One alert per positive or unknown row of the suicidality_flags mart."""
    alerts = []
    for row in flags.to_dict("records"):
        positive = row["flag_kind"] == "positive"
        rule, session_id = str(row["rule"]), row.get("session_id")
        if positive:
            kind = model.SUICIDALITY
            priority = model.URGENT if rule == CSSRS_RULE else model.HIGH
            what = "C-SSRS screener: high risk" if rule == CSSRS_RULE else "PHQ-9 item 9 positive"
        else:
            kind, priority = model.SUICIDALITY_UNKNOWN, model.REVIEW
            what = "C-SSRS screener: answer missing" if rule == CSSRS_RULE else "PHQ-9 item 9: answer missing"
        emergent = row.get("treatment_emergent")
        details = {
            "instrument": str(row["instrument"]),
            "answer": ("yes to " + str(row["value"])) if rule == CSSRS_RULE and positive else str(row["value"] or ""),
            "baseline answer": str(row.get("baseline_value") or "not in the data"),
            "worse than baseline": "unknown" if emergent is None or pd.isna(emergent) else str(bool(emergent)).lower(),
        }
        if not isinstance(session_id, str):
            details["note"] = "the questionnaire is not linked to an infusion session"
        elif not context.staged(session_id):
            details["note"] = "the infusion session's EHR record is not staged (late or held in quarantine)"
        clinic = row.get("clinic_id") or context.session(session_id, "clinic_id") or "unknown"
        alerts.append(
            SafetyAlert(
                dedupe_key=f"suicidality:{row['questionnaire_id']}:{rule}",
                kind=kind,
                priority=priority,
                clinic_id=str(clinic),
                patient_token=context.token(row.get("patient_id")),
                event=what,
                term_or_rule=rule,
                protocol=str(context.session(session_id, "protocol") or "unknown"),
                infusion_number=_int(context.session(session_id, "infusion_number")),
                course_day=context.day(session_id),
                minutes_from_start=context.minutes(session_id, row.get("authored_at")),
                details=details,
                occurred_at=_iso(row.get("authored_at")),
            )
        )
    return alerts


# --- helpers ------------------------------------------------------------------------------------------------


def _rows_where(frame: pd.DataFrame, column: str, values: set[str]) -> pd.DataFrame:
    return frame.loc[frame[column].isin(values)] if not frame.empty else frame


def _read_mart(lake: Lake, name: str) -> pd.DataFrame:
    path = lake.path("marts", f"{name}.parquet")
    return pd.read_parquet(str(path)) if path.exists() else pd.DataFrame()


def _plain(value: object) -> object:
    """None for any missing value (NaN, NA, NaT), else the value."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    return value


def _int(value: object) -> int | None:
    value = _plain(value)
    return None if value is None else int(value)


def _start_plus(start: object, minutes: object) -> pd.Timestamp | None:
    if start is None or minutes is None:
        return None
    return pd.Timestamp(start) + pd.Timedelta(minutes=float(minutes))


def _iso(value: object) -> str:
    value = _plain(value)
    if value is None:
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
