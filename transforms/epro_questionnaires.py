"""Patient-app questionnaires: FHIR R4 QuestionnaireResponse NDJSON -> one scored row per response.

Each line is decoded and validated with the fhir.resources R4B model (R4 on the wire), then checked against
our contract (subject, authored, known instrument, valid answer codes) and scored. Partial forms are staged
with `is_complete = False` and no total; the item-9 and C-SSRS answers that were given are still kept.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from transforms import scoring
from transforms.quarantine import QuarantineRecord

SOURCE = "epro"
INSTRUMENTS = {
    "http://loinc.org/q/44249-1": "phq9",
    "http://loinc.org/q/69737-5": "gad7",
    "urn:ketamine-network:Questionnaire/cssrs-screener": "cssrs",
}
ITEMS = {"phq9": scoring.PHQ9_ITEMS, "gad7": scoring.GAD7_ITEMS, "cssrs": scoring.CSSRS_ITEMS}


class ResponseRejected(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule, self.reason = rule, reason


@dataclass
class ParsedEproBatch:
    responses: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[QuarantineRecord] = field(default_factory=list)
    lines_in: int = 0


def _validate_fhir(resource: dict[str, Any]) -> None:
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
    from pydantic import ValidationError

    try:
        QuestionnaireResponse.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ResponseRejected(
            "fhir_structure", f"not a valid R4 QuestionnaireResponse at {where}: {first['type']}"
        ) from exc


def _answer(item: dict[str, Any], instrument: str) -> int | bool | None:
    answers = item.get("answer") or []
    if not answers:
        return None
    coding = answers[0].get("valueCoding") or {}
    code = coding.get("code")
    table = scoring.YES_NO if instrument == "cssrs" else scoring.FREQUENCY_SCORES
    if code not in table:
        raise ResponseRejected(
            "invalid_answer", f"item {item.get('linkId')} answer code {code} is not in the answer list"
        )
    return table[code]


def score_response(resource: dict[str, Any]) -> dict[str, Any]:
    """Contract checks and scoring of one validated QuestionnaireResponse."""
    instrument = INSTRUMENTS.get(resource.get("questionnaire", ""))
    if instrument is None:
        raise ResponseRejected(
            "unknown_questionnaire", f"questionnaire {resource.get('questionnaire')} is not collected"
        )
    subject = (resource.get("subject") or {}).get("identifier") or {}
    if not subject.get("value") or not subject.get("system"):
        raise ResponseRejected("missing_required", "subject.identifier (patient MRN) is missing")
    if not resource.get("authored"):
        raise ResponseRejected("missing_required", "authored time is missing")
    authored = dt.datetime.fromisoformat(resource["authored"])
    if authored.utcoffset() is None:
        raise ResponseRejected("timestamp_invalid", "authored time has no UTC offset")
    by_link = {item.get("linkId"): item for item in resource.get("item", [])}
    unknown = set(by_link) - set(ITEMS[instrument])
    if unknown:
        raise ResponseRejected("unknown_item", f"items {sorted(unknown)} are not part of {instrument}")
    answers = {link: (_answer(by_link[link], instrument) if link in by_link else None) for link in ITEMS[instrument]}
    encounter = ((resource.get("encounter") or {}).get("identifier") or {}).get("value")
    row: dict[str, Any] = {
        "questionnaire_id": resource["id"],
        "instrument": instrument,
        "status": resource.get("status"),
        "mrn_system": subject["system"],
        "mrn": subject["value"],
        "session_id": encounter,
        "authored_at": authored.astimezone(dt.UTC),
        "answers_json": json.dumps(answers, separators=(",", ":")),
        "items_answered": sum(v is not None for v in answers.values()),
        "total_score": None,
        "score_band": None,
        "item9_score": None,
        "suicidality_flag": False,  # a positive suicidality answer (PHQ-9 item 9 >= 1, C-SSRS high risk)
        "suicidality_unknown": False,  # the suicidality question was left unanswered: needs review too
        "cssrs_risk": None,
    }
    if instrument == "cssrs":
        row["cssrs_risk"] = scoring.cssrs_risk(answers)
        row["is_complete"] = row["cssrs_risk"] is not None
        row["suicidality_flag"] = row["cssrs_risk"] == "high"
        # Unknown risk (a partial screener) is never treated as "no risk": it is surfaced for review.
        row["suicidality_unknown"] = row["cssrs_risk"] is None
    else:
        total = scoring.complete_total(list(answers.values()))
        row["is_complete"] = total is not None
        row["total_score"] = total
        row["score_band"] = scoring.band(total, scoring.PHQ9_BANDS if instrument == "phq9" else scoring.GAD7_BANDS)
        if instrument == "phq9":
            item9 = answers[scoring.PHQ9_ITEM9]
            row["item9_score"] = item9
            row["suicidality_flag"] = item9 is not None and item9 >= 1
            row["suicidality_unknown"] = item9 is None
    return row


def parse_epro_batch(data: bytes, batch_id: str) -> ParsedEproBatch:
    result = ParsedEproBatch()
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        result.lines_in += 1
        raw_text = raw.decode("utf-8", errors="backslashreplace")
        key = f"{batch_id}:{line_no}"
        try:
            text = raw.decode("utf-8")
            resource = json.loads(text)
            key = str(resource.get("id") or key)
            if resource.get("resourceType") != "QuestionnaireResponse":
                raise ResponseRejected(
                    "fhir_structure", f"line holds a {resource.get('resourceType')}, not a QuestionnaireResponse"
                )
            _validate_fhir(resource)
            row = score_response(resource)
        except UnicodeDecodeError as exc:
            result.rejected.append(
                QuarantineRecord(
                    batch_id,
                    SOURCE,
                    key,
                    "encoding",
                    "critical",
                    f"line {line_no} is not valid UTF-8 (byte {exc.start})",
                    raw_text,
                )
            )
            continue
        except json.JSONDecodeError:
            result.rejected.append(
                QuarantineRecord(
                    batch_id, SOURCE, key, "json_parse", "critical", f"line {line_no} is not valid JSON", raw_text
                )
            )
            continue
        except ResponseRejected as exc:
            result.rejected.append(
                QuarantineRecord(batch_id, SOURCE, key, exc.rule, "critical", f"line {line_no}: {exc.reason}", raw_text)
            )
            continue
        row.update(batch_id=batch_id, line=line_no, raw_record=raw_text)
        result.responses.append(row)
    return result
