"""Adverse events -> R4 AdverseEvent, for staff-recorded events and for events the pipeline's rules detected.

R4 shape (not R5): `event`, `date`, `severity` (mild/moderate/severe, a required binding), `seriousness`,
`outcome`, `suspectEntity.instance` -> the MedicationAdministration with the staff's relatedness as causality.
What R4 has no element for travels in extensions: the CTCAE grade *with its version* (severity alone loses it),
the ICH E2A seriousness criteria, the action taken (paused, stopped, medication given) and the detection rule.
R4 AdverseEvent has no `identifier` search parameter, so delivery addresses it by its deterministic id.
"""

from __future__ import annotations

import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped, RowCheck, missing, not_in, source_batches, split_rows, unresolved, utc_text
from fhir_mappings.terminology import (
    AE_OUTCOME,
    AE_SERIOUSNESS,
    AE_SEVERITY,
    EXTENSIONS,
    LOCAL_CODES,
    SNOMED,
    adverse_event_outcomes,
    ctcae_severity,
)

CTCAE_GRADE = f"{EXTENSIONS}/ctcae-grade"
SERIOUSNESS_CRITERION = f"{EXTENSIONS}/seriousness-criterion"
ACTION_TAKEN = f"{EXTENSIONS}/action-taken"
RESOLVED_AT = f"{EXTENSIONS}/resolved-at"
DETECTION_RULE = f"{EXTENSIONS}/detection-rule"
CODE_SYSTEMS = {"SNOMED": SNOMED, "LOCAL": f"{LOCAL_CODES}/adverse-event-term"}
SERIOUSNESS = {1: ("Serious", "Serious"), 0: ("Non-serious", "Non-serious")}  # R4 code system spells them so
SERIOUSNESS_CRITERIA = (
    "death",
    "life_threatening",
    "hospitalization",
    "disability",
    "congenital_anomaly",
    "medically_important",
)
ACTIONS = ("none", "paused", "stopped", "medication_given", "ed_transfer")
RELATEDNESS = {
    "related": "Related",
    "possibly_related": "Possibly related",
    "unlikely_related": "Unlikely related",
    "not_related": "Not related",
}


def adverse_event_id(system: str, key: str) -> str:
    return ids.resource_id("AdverseEvent", system, key)


def _criteria(text: pd.Series) -> pd.Series:
    return text.astype("string").fillna("").map(lambda t: [c for c in t.replace(";", ",").split(",") if c.strip()])


def build_recorded_events(events: pd.DataFrame, session_keys: set[str]) -> Mapped:
    """Staff-recorded events from the EHR."""
    criteria = _criteria(events["seriousness_criteria"])
    grades = pd.to_numeric(events["ctcae_grade"], errors="coerce")
    good, rejected = split_rows(
        events,
        [
            missing(events, "ae_id"),
            missing(events, "onset_at"),
            missing(events, "code"),
            missing(events, "term_label"),
            not_in(events, "code_system", CODE_SYSTEMS),
            not_in(events, "outcome", adverse_event_outcomes()),
            RowCheck("value_set", "ctcae_grade is not a CTCAE grade 1-5", ~grades.isin(list(ctcae_severity()))),
            missing(events, "ctcae_version"),
            not_in(events, "serious", SERIOUSNESS),
            RowCheck(
                "value_set",
                "seriousness_criteria holds a criterion outside ICH E2A",
                criteria.map(lambda cs: any(c not in SERIOUSNESS_CRITERIA for c in cs)),
            ),
            not_in(events, "relatedness", RELATEDNESS),
            not_in(events, "action_taken", ACTIONS),
            unresolved(events, "session_id", session_keys, "infusion session"),
        ],
        resource_type="AdverseEvent",
        source_table="adverse_events",
        key=events["ae_id"],
        batch=events.get("batch_id"),
    )
    out = Mapped("AdverseEvent", rejections=rejected)
    resolved = good["resolved_at"].notna().tolist()
    for (
        key,
        session,
        patient,
        system,
        code,
        label,
        onset,
        end,
        with_end,
        grade,
        version,
        serious,
        crit,
        related,
        action,
        outcome,
        batch,
        updated,
    ) in zip(
        good["ae_id"].tolist(),
        good["session_id"].tolist(),
        good["patient_id"].tolist(),
        good["code_system"].tolist(),
        good["code"].tolist(),
        good["term_label"].tolist(),
        utc_text(good["onset_at"]),
        utc_text(good["resolved_at"]),
        resolved,
        grades[good.index].astype("int64").tolist(),
        good["ctcae_version"].astype("string").tolist(),
        good["serious"].astype("int64").tolist(),
        criteria[good.index].tolist(),
        good["relatedness"].tolist(),
        good["action_taken"].tolist(),
        good["outcome"].tolist(),
        source_batches(good),
        utc_text(good["updated_at"]),
        strict=True,
    ):
        extensions = [_grade(grade, version)]
        extensions += [{"url": SERIOUSNESS_CRITERION, "valueCode": c} for c in crit]
        extensions.append({"url": ACTION_TAKEN, "valueCode": action})
        if with_end:
            extensions.append({"url": RESOLVED_AT, "valueDateTime": end})
        severity, severity_display = ctcae_severity()[grade]
        outcome_code, outcome_display = adverse_event_outcomes()[outcome]
        seriousness_code, seriousness_display = SERIOUSNESS[serious]
        resource = _event(
            adverse_event_id(ids.ADVERSE_EVENT, key),
            ids.identifier(ids.ADVERSE_EVENT, key),
            extensions,
            event={"coding": [{"system": CODE_SYSTEMS[system], "code": code, "display": label}], "text": label},
            patient=patient,
            session=session,
            date=onset,
        )
        resource["seriousness"] = {
            "coding": [{"system": AE_SERIOUSNESS, "code": seriousness_code, "display": seriousness_display}]
        }
        resource["severity"] = {"coding": [{"system": AE_SEVERITY, "code": severity, "display": severity_display}]}
        resource["outcome"] = {"coding": [{"system": AE_OUTCOME, "code": outcome_code, "display": outcome_display}]}
        resource["suspectEntity"] = [_suspect(session, related)]
        out.add(resource, ("AdverseEvent", "recorded", len(crit), with_end), patient, batch, updated)
    return out


def build_detected_events(detected: pd.DataFrame, session_keys: set[str]) -> Mapped:
    """Events the safety rules detected in the readings or the questionnaires (no staff assessment yet).

    Columns: event_key, rule, session_id, patient_id, code_system, code, label, detected_at, batch_id and,
    where the rule implies one, ctcae_grade + ctcae_version.
    """
    grades = pd.to_numeric(detected.get("ctcae_grade", pd.Series(pd.NA, index=detected.index)), errors="coerce")
    versions = detected.get("ctcae_version", pd.Series(pd.NA, index=detected.index)).astype("string")
    good, rejected = split_rows(
        detected,
        [
            missing(detected, "event_key"),
            missing(detected, "detected_at"),
            missing(detected, "code"),
            missing(detected, "label"),
            not_in(detected, "code_system", CODE_SYSTEMS),
            RowCheck(
                "value_set",
                "ctcae_grade is not a CTCAE grade 1-5",
                grades.notna() & ~grades.isin(list(ctcae_severity())),
            ),
            RowCheck(
                "required",
                "a CTCAE grade without its CTCAE version",
                grades.notna() & versions.str.strip().fillna("").eq(""),
            ),
            unresolved(detected, "session_id", session_keys, "infusion session"),
        ],
        resource_type="AdverseEvent",
        source_table="detected_events",
        key=detected["event_key"],
        batch=detected["batch_id"],
    )
    out = Mapped("AdverseEvent", rejections=rejected)
    when = utc_text(good["detected_at"])
    for key, rule, session, patient, system, code, label, at, grade, version, batch in zip(
        good["event_key"].tolist(),
        good["rule"].tolist(),
        good["session_id"].tolist(),
        good["patient_id"].tolist(),
        good["code_system"].tolist(),
        good["code"].tolist(),
        good["label"].tolist(),
        when,
        grades[good.index].tolist(),
        versions[good.index].fillna("").tolist(),
        good["batch_id"].tolist(),
        strict=True,
    ):
        graded = not pd.isna(grade)
        extensions = [{"url": DETECTION_RULE, "valueCode": rule}]
        if graded:
            extensions.insert(0, _grade(int(grade), version))
        resource = _event(
            adverse_event_id(ids.DETECTED_EVENT, key),
            ids.identifier(ids.DETECTED_EVENT, key),
            extensions,
            event={"coding": [{"system": CODE_SYSTEMS[system], "code": code, "display": label}], "text": label},
            patient=patient,
            session=session,
            date=at,
        )
        resource["detected"] = at
        if graded:
            severity, display = ctcae_severity()[int(grade)]
            resource["severity"] = {"coding": [{"system": AE_SEVERITY, "code": severity, "display": display}]}
        resource["suspectEntity"] = [{"instance": ids.reference("MedicationAdministration", _administration(session))}]
        out.add(resource, ("AdverseEvent", "detected", graded), patient, batch, at)
    return out


def _event(rid: str, identifier: dict, extensions: list, *, event: dict, patient: str, session: str, date: str) -> dict:
    return {
        "resourceType": "AdverseEvent",
        "id": rid,
        "extension": extensions,
        "identifier": identifier,
        "actuality": "actual",
        "event": event,
        "subject": ids.patient_ref(patient),
        "encounter": ids.encounter_ref(session),
        "date": date,
    }


def _grade(grade: int, version: str) -> dict:
    coding = {
        "system": f"{LOCAL_CODES}/ctcae-grade",
        "version": version,
        "code": str(grade),
        "display": f"Grade {grade}",
    }
    return {"url": CTCAE_GRADE, "valueCoding": coding}


def _administration(session: str) -> str:
    return ids.medication_administration_id(session)


def _suspect(session: str, relatedness: str) -> dict:
    assessment = {
        "coding": [
            {
                "system": f"{LOCAL_CODES}/adverse-event-relatedness",
                "code": relatedness,
                "display": RELATEDNESS[relatedness],
            }
        ]
    }
    return {
        "instance": ids.reference("MedicationAdministration", _administration(session)),
        "causality": [{"assessment": assessment}],
    }
