"""A safety alert and the message it becomes: what the receiving clinic reads, and nothing more.

The message names the clinic, the patient's pseudonymous token (`state/pseudonyms.parquet`), the infusion
number and course day, and the event. It never carries a name, MRN, birth date, patient or session id, or a
date of care: the clinic re-identifies the patient through its own pseudonym lookup, and the text says so.
The one timestamp is `raised_at`, the pipeline's clock when the alert was first raised (not a care date).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "clinic-safety-alert/1"

# Kinds of alert (each maps one source row to one alert).
SERIOUS_AE = "serious_adverse_event"
SEVERE_BP = "severe_bp_breach"
SUICIDALITY = "suicidality_flag"
SUICIDALITY_UNKNOWN = "suicidality_unknown"

# Priorities, most pressing first. urgent: act now, the patient may have left the clinic (serious AE, C-SSRS
# high risk); high: same-day review (severe BP breach, PHQ-9 item 9 >= 1); review: same-day check of a
# suicidality answer that is missing (an unanswered item is never read as "no risk").
URGENT, HIGH, REVIEW = "urgent", "high", "review"
PRIORITY_RANK = {URGENT: 1, HIGH: 2, REVIEW: 3}

REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # as the patient tokens: no 0/O, 1/I/L (read aloud on calls)
REIDENTIFY = (
    "The patient is named only by a pseudonymous token. Identify them through your clinic's pseudonym "
    "lookup (token + infusion number). By design this message carries no name, MRN, birth date or date of care."
)
ACTION = {
    SERIOUS_AE: "Serious adverse event (ICH E2A): review the event and its follow-up today.",
    SEVERE_BP: "Severe blood-pressure breach during or after dosing: review the session's BP management.",
    SUICIDALITY: "Positive suicidality screen: suicidality review per protocol (C-SSRS high risk: immediately; "
    "PHQ-9 item 9 >= 1: same day).",
    SUICIDALITY_UNKNOWN: "A suicidality question was left unanswered: an unanswered item is not 'no risk'; "
    "follow up with the patient today.",
}


def new_alert_ref() -> str:
    """A random reference for acknowledgements and receiver-side idempotency (never derived from patient data)."""
    return "A-" + "".join(secrets.choice(REF_ALPHABET) for _ in range(10))


@dataclass
class SafetyAlert:
    """One alert. `dedupe_key` is internal (it may hold session ids) and never leaves the lake."""

    dedupe_key: str
    kind: str
    priority: str
    clinic_id: str
    patient_token: str
    event: str  # human label, e.g. "Blood pressure increased"
    term_or_rule: str  # the AE term, reading rule or questionnaire rule
    protocol: str = "unknown"
    infusion_number: int | None = None
    course_day: int | None = None
    minutes_from_start: float | None = None  # event minute from the start of dosing (negative: before)
    details: dict[str, str] = field(default_factory=dict)
    alert_ref: str = ""
    raised_at: str = ""  # ISO UTC, the pipeline's clock when first raised
    occurred_at: str = ""  # internal only (latency figures in the ledger); never in a message

    # --- the message -------------------------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """The JSON the webhook receives (and the email's content): no PHI, see the module doc."""
        return {
            "schema": SCHEMA,
            "alert_ref": self.alert_ref,
            "kind": self.kind,
            "priority": self.priority,
            "clinic_id": self.clinic_id,
            "patient_token": self.patient_token,
            "protocol": self.protocol,
            "infusion_number": self.infusion_number,
            "course_day": self.course_day,
            "minutes_from_start": self.minutes_from_start,
            "event": self.event,
            "term_or_rule": self.term_or_rule,
            "details": dict(self.details),
            "action": ACTION.get(self.kind, ""),
            "raised_at": self.raised_at,
            "reidentification": REIDENTIFY,
        }

    def subject(self) -> str:
        infusion = f"infusion {self.infusion_number}" if self.infusion_number is not None else "infusion unknown"
        return (
            f"[{self.priority.upper()}] Clinic {self.clinic_id} safety alert: {self.event} - "
            f"patient {self.patient_token}, {infusion} ({self.alert_ref})"
        )

    def text(self) -> str:
        infusion = "unknown" if self.infusion_number is None else str(self.infusion_number)
        day = "unknown" if self.course_day is None else str(self.course_day)
        when = (
            "unknown"
            if self.minutes_from_start is None
            else f"{self.minutes_from_start:+g} min from the start of dosing"
        )
        lines = [
            f"{self.priority.upper()} clinic safety alert {self.alert_ref}",
            "",
            f"Clinic:          {self.clinic_id}",
            f"Patient token:   {self.patient_token}",
            f"Infusion number: {infusion} (course day {day}, protocol {self.protocol})",
            f"Event:           {self.event} [{self.kind}: {self.term_or_rule}]",
            f"When:            {when}",
        ]
        lines += [f"  {key}: {value}" for key, value in self.details.items()]
        lines += [
            "",
            ACTION.get(self.kind, ""),
            "",
            REIDENTIFY,
            f"Raised by the clinic pipeline at {self.raised_at} (pipeline clock). Quote {self.alert_ref} when you "
            "acknowledge.",
        ]
        return "\n".join(lines) + "\n"

    # --- storage -----------------------------------------------------------------------------------------

    def to_record(self) -> str:
        return json.dumps(asdict(self))  # key order kept: details read in the order they were raised

    @classmethod
    def from_record(cls, text: str) -> SafetyAlert:
        return cls(**json.loads(text))
