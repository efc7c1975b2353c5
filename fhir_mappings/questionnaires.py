"""Questionnaires -> a QuestionnaireResponse per completed (or partial) form, plus a scored Observation.

Patient-app forms (PHQ-9, GAD-7, C-SSRS screener) and clinician ratings from REDCap (CADSS, MADRS) map the
same way. The scored Observation (category `survey`, `derivedFrom` the response) exists only where the ingest
computed a score: a partial form gets no total, never a silently wrong one. Unanswered items are left out of
the response (the C-SSRS skip logic, or a form abandoned part-way), so the answers that were given survive.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped, RowCheck, missing, not_in, split_rows, unresolved, utc_text
from fhir_mappings.template import Template
from fhir_mappings.terminology import LOCAL_CODES, OBSERVATION_CATEGORY, answer_codings, instrument_items, instruments

SURVEY = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}], "text": "Survey"}]
RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
CSSRS_RISKS = {"none": "No risk identified", "low": "Low risk", "moderate": "Moderate risk", "high": "High risk"}


def response_id(system: str, key: str) -> str:
    return ids.resource_id("QuestionnaireResponse", system, key)


@functools.cache
def _item(instrument: str, link_id: str, text: str, value: Any, value_type: type) -> tuple[dict, bytes] | None:
    """One answered item and its JSON, computed once per distinct answer (built resources are never mutated).

    `value_type` is part of the cache key because True == 1 for a cache, not for FHIR.
    """
    kind = instruments()[instrument].answer_kind
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        answer: dict = {"valueInteger": value}
    else:
        coding = answer_codings().get((kind, str(value).lower() if isinstance(value, bool) else str(value)))
        if coding is None:
            return None
        answer = {"valueCoding": coding}
    item = {"linkId": link_id, "text": text, "answer": [answer]}
    return item, orjson.dumps(item)


def response(
    system: str,
    answered: bool,
    rid: str,
    key: str,
    questionnaire: str,
    status: str,
    subject: str,
    encounter: str,
    authored: str,
    items: Any = None,
) -> dict[str, Any]:
    """One QuestionnaireResponse (references as "Type/id" strings); `answered`: whether it has items."""
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "identifier": ids.identifier(system, key),
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "authored": authored,
    }
    if answered:
        resource["item"] = items
    return resource


def _items(instrument: str, answers: dict[str, Any]) -> list[tuple[dict, bytes]] | None:
    """The answered items (dict, JSON) in form order, or None when an answer is outside the answer list."""
    items = []
    for link_id, text in instrument_items()[instrument]:
        value = answers.get(link_id)
        if value is None:
            continue
        try:
            item = _item(instrument, link_id, text, value, type(value))
        except TypeError:  # an unhashable answer (a list or object where a score belongs)
            item = None
        if item is None:
            return None
        items.append(item)
    return items


def _by_link_id(instrument: str, payload: str) -> dict[str, Any]:
    """Answers keyed by linkId: the app sends a map, REDCap an array in form order."""
    answers = orjson.loads(payload)
    if isinstance(answers, list):
        links = [link for link, _ in instrument_items().get(instrument, [])]
        return dict(zip(links, answers, strict=False))
    return answers


def build_questionnaires(
    forms: pd.DataFrame,
    *,
    source_table: str,
    identifier_system: str,
    key_column: str,
    when_column: str,
    status: pd.Series,
    session_keys: set[str],
    patient_keys: set[str],
) -> tuple[Mapped, Mapped]:
    """(QuestionnaireResponses, scored Observations) of one staged questionnaire table."""
    answers_column = "answers_json" if "answers_json" in forms else "items_json"
    forms = forms.assign(_status=status)
    parsed = [
        _items(ins, _by_link_id(ins, payload)) if ins in instruments() else None
        for ins, payload in zip(forms["instrument"].tolist(), forms[answers_column].tolist(), strict=True)
    ]
    items = pd.Series(parsed, index=forms.index, dtype=object)
    good, rejected = split_rows(
        forms,
        [
            missing(forms, key_column),
            missing(forms, when_column),
            not_in(forms, "instrument", instruments()),
            not_in(forms, "_status", RESPONSE_STATUSES),
            RowCheck("answer_value_set", "an answer is outside the instrument's answer list", items.isna()),
            unresolved(forms, "patient_id", patient_keys, "patient"),
            unresolved(forms, "session_id", session_keys, "infusion session"),
        ],
        resource_type="QuestionnaireResponse",
        source_table=source_table,
        key=forms[key_column],
        batch=forms["batch_id"],
    )
    responses = Mapped("QuestionnaireResponse", rejections=rejected)
    authored = utc_text(good[when_column])
    templates = {
        True: Template(functools.partial(response, identifier_system, True), 8),
        False: Template(functools.partial(response, identifier_system, False), 7),
    }
    dumps = orjson.dumps
    for key, instrument, form_status, session, patient, when, answered, batch in zip(
        good[key_column].tolist(),
        good["instrument"].tolist(),
        good["_status"].tolist(),
        good["session_id"].tolist(),
        good["patient_id"].tolist(),
        authored,
        items[good.index].tolist(),
        good["batch_id"].tolist(),
        strict=True,
    ):
        rid = response_id(identifier_system, key)
        subject, encounter = f"Patient/{ids.patient_id(patient)}", f"Encounter/{ids.encounter_id(session)}"
        values = [rid, key, instruments()[instrument].questionnaire, form_status, subject, encounter, when]
        shape = ("QuestionnaireResponse", instrument, bool(answered))
        template = templates[bool(answered)]
        if shape not in responses.examples:
            responses.examples[shape] = template.check(*values, *([[i for i, _ in answered]] if answered else []))
        serialized = list(map(dumps, values))
        if answered:
            serialized.append(b"[" + b",".join(line for _, line in answered) + b"]")
        responses.add_line(template.fill(serialized), rid, shape, patient, batch, when)
    response_ids = dict(zip(good[key_column].tolist(), responses.ids, strict=True))
    return responses, _scores(good.assign(_authored=authored), response_ids, key_column)


def _scores(forms: pd.DataFrame, response_ids: dict[str, str], key_column: str) -> Mapped:
    """Scored Observations: totals (PHQ-9, GAD-7, CADSS, MADRS) and the C-SSRS screener's risk level."""
    total = forms["total_score"].notna()
    risk = forms["cssrs_risk"].isin(list(CSSRS_RISKS)) if "cssrs_risk" in forms else pd.Series(False, forms.index)
    scored = forms[(total & forms["instrument"].ne("cssrs")) | (risk & forms["instrument"].eq("cssrs"))]
    bands = scored["score_band"] if "score_band" in scored else pd.Series(pd.NA, index=scored.index)
    risks = scored["cssrs_risk"] if "cssrs_risk" in scored else pd.Series(pd.NA, index=scored.index)
    out = Mapped("Observation")
    for key, instrument, session, patient, when, value, band, level, batch in zip(
        scored[key_column].tolist(),
        scored["instrument"].tolist(),
        scored["session_id"].tolist(),
        scored["patient_id"].tolist(),
        scored["_authored"].tolist(),
        scored["total_score"].tolist(),
        bands.astype("string").fillna("").tolist(),
        risks.astype("string").fillna("").tolist(),
        scored["batch_id"].tolist(),
        strict=True,
    ):
        spec = instruments()[instrument]
        score_key = f"{key}-{spec.score_code}"
        resource = {
            "resourceType": "Observation",
            "id": ids.observation_id(ids.INSTRUMENT_SCORE, score_key),
            "identifier": [ids.identifier(ids.INSTRUMENT_SCORE, score_key)],
            "status": "final",
            "category": SURVEY,
            "code": {
                "coding": [{"system": spec.score_system, "code": spec.score_code, "display": spec.score_display}],
                "text": spec.score_display,
            },
            "subject": ids.patient_ref(patient),
            "encounter": ids.encounter_ref(session),
            "effectiveDateTime": when,
        }
        if spec.score_kind == "risk":
            resource["valueCodeableConcept"] = {
                "coding": [{"system": f"{LOCAL_CODES}/cssrs-risk", "code": level, "display": CSSRS_RISKS[level]}],
                "text": CSSRS_RISKS[level],
            }
        else:
            resource["valueInteger"] = int(value)
        if band:
            resource["interpretation"] = [{"text": band}]
        resource["derivedFrom"] = [ids.reference("QuestionnaireResponse", response_ids[key])]
        out.add(resource, ("Observation", "score", spec.score_kind, bool(band)), patient, batch, when)
    return out
