"""Patient-reported outcomes as the clinic systems export them.

- The patient app sends FHIR R4 QuestionnaireResponse resources (NDJSON, one per line) for PHQ-9, GAD-7
  and the C-SSRS screener, answers coded with LOINC answer codes (LL358-3) or yes/no (LA33-6 / LA32-8).
- Clinician-administered scales (CADSS, MADRS) come from a REDCap project as a CSV export.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from clinic_pipeline.simulator.sessions import Questionnaire, Session

NETWORK_URN = "urn:ketamine-network"
LOINC = "http://loinc.org"
FREQUENCY_ANSWERS = [  # LOINC LL358-3, score = position
    ("LA6568-5", "Not at all"),
    ("LA6569-3", "Several days"),
    ("LA6570-1", "More than half the days"),
    ("LA6571-9", "Nearly every day"),
]
YES, NO = ("LA33-6", "Yes"), ("LA32-8", "No")
PHQ9_ITEMS = [
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    ("44258-2", "Feeling bad about yourself"),
    ("44252-5", "Trouble concentrating on things"),
    ("44253-3", "Moving or speaking slowly, or being fidgety or restless"),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
]
GAD7_ITEMS = [
    ("69725-0", "Feeling nervous, anxious or on edge"),
    ("68509-9", "Not being able to stop or control worrying"),
    ("69733-4", "Worrying too much about different things"),
    ("69734-2", "Trouble relaxing"),
    ("69735-9", "Being so restless that it is hard to sit still"),
    ("69689-8", "Becoming easily annoyed or irritable"),
    ("69736-7", "Feeling afraid as if something awful might happen"),
]
CSSRS_ITEMS = [  # screener, "since last visit"; LOINC codes for the screener are unconfirmed: local link ids
    ("cssrs-q1", "Wish to be dead"),
    ("cssrs-q2", "Non-specific active suicidal thoughts"),
    ("cssrs-q3", "Active suicidal ideation with any methods (not plan) without intent to act"),
    ("cssrs-q4", "Active suicidal ideation with some intent to act, without specific plan"),
    ("cssrs-q5", "Active suicidal ideation with specific plan and intent"),
    ("cssrs-q6", "Suicidal behaviour in the past 3 months"),
]
QUESTIONNAIRE_URLS = {
    "phq9": f"{LOINC}/q/44249-1",
    "gad7": f"{LOINC}/q/69737-5",
    "cssrs": f"{NETWORK_URN}:Questionnaire/cssrs-screener",
}


def fhir_datetime(moment: Any) -> str:
    return moment.isoformat(timespec="seconds")


def _frequency_item(link_id: str, text: str, score: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link_id, "text": text}
    if score is not None:
        code, display = FREQUENCY_ANSWERS[score]
        item["answer"] = [{"valueCoding": {"system": LOINC, "code": code, "display": display}}]
    return item


def questionnaire_response(session: Session, q: Questionnaire) -> dict[str, Any]:
    """A FHIR R4 QuestionnaireResponse for a patient-app instrument (phq9, gad7, cssrs)."""
    patient, clinic = session.patient, session.patient.clinic
    if q.instrument == "cssrs":
        items = []
        for (link_id, text), answer in zip(CSSRS_ITEMS, q.answers, strict=True):
            if answer is None:  # skipped by the screener's own logic
                continue
            code, display = YES if answer else NO
            items.append(
                {
                    "linkId": link_id,
                    "text": text,
                    "answer": [{"valueCoding": {"system": LOINC, "code": code, "display": display}}],
                }
            )
    else:
        spec = PHQ9_ITEMS if q.instrument == "phq9" else GAD7_ITEMS
        items = [_frequency_item(code, text, score) for (code, text), score in zip(spec, q.answers, strict=True)]
    return {
        "resourceType": "QuestionnaireResponse",
        "id": q.questionnaire_id,
        "meta": {"source": f"{NETWORK_URN}:epro-app:{clinic.clinic_id}"},
        "identifier": {"system": f"{NETWORK_URN}:epro-app:response", "value": q.questionnaire_id},
        "questionnaire": QUESTIONNAIRE_URLS[q.instrument],
        "status": "completed",
        "subject": {"identifier": {"system": f"{NETWORK_URN}:{clinic.clinic_id}:mrn", "value": patient.mrn}},
        "encounter": {"identifier": {"system": f"{NETWORK_URN}:session", "value": session.session_id}},
        "authored": fhir_datetime(q.authored_at),
        "item": items,
    }


REDCAP_COLUMNS = [
    "record_id",
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "session_id",
    "cadss_timepoint",
    "cadss_datetime",
    *[f"cadss_{i}" for i in range(1, 24)],
    "cadss_complete",
    "madrs_timepoint",
    "madrs_datetime",
    *[f"madrs_{i}" for i in range(1, 11)],
    "madrs_complete",
]


def redcap_row(session: Session, q: Questionnaire) -> dict[str, str]:
    """One REDCap export row. REDCap stores local wall-clock time without an offset ('YYYY-MM-DD HH:MM')."""
    row = dict.fromkeys(REDCAP_COLUMNS, "")
    row.update(
        record_id=session.patient.redcap_record_id,
        redcap_event_name=f"infusion_{session.plan.infusion_number}_arm_1",
        redcap_repeat_instrument=q.instrument,
        redcap_repeat_instance="1" if q.timepoint in ("40min", "baseline", "post_induction") else "2",
        session_id=session.session_id,
    )
    prefix = q.instrument
    row[f"{prefix}_timepoint"] = q.timepoint
    row[f"{prefix}_datetime"] = q.authored_at.strftime("%Y-%m-%d %H:%M")
    for i, value in enumerate(q.answers, start=1):
        row[f"{prefix}_{i}"] = str(value)
    row[f"{prefix}_complete"] = "2"  # REDCap form status: 0 incomplete, 1 unverified, 2 complete
    return row


def redcap_csv_text(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REDCAP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
