"""Clinician-rated scales from the REDCap CSV export (CADSS, MADRS) -> one scored row per rating.

REDCap stores local wall-clock time without an offset: the clinic's IANA time zone (from the EHR) turns it
into UTC. Incomplete forms (REDCap status 0 or blank items) are staged without a total.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from transforms import scoring
from transforms.quarantine import QuarantineRecord

SOURCE = "redcap"
SCALES = {"cadss": (scoring.CADSS_ITEMS, scoring.CADSS_MAX), "madrs": (scoring.MADRS_ITEMS, scoring.MADRS_MAX)}


@dataclass
class ParsedRatingBatch:
    ratings: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[QuarantineRecord] = field(default_factory=list)
    rows_in: int = 0


class RatingRejected(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule, self.reason = rule, reason


def rating_row(record: dict[str, str], clinic_timezone: str) -> dict[str, Any]:
    instrument = record.get("redcap_repeat_instrument", "")
    if instrument not in SCALES:
        raise RatingRejected("unknown_questionnaire", f"instrument '{instrument}' is not collected")
    n_items, max_score = SCALES[instrument]
    if not record.get("session_id"):
        raise RatingRejected("missing_required", "session_id is empty")
    stamp = record.get(f"{instrument}_datetime", "")
    try:
        local = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise RatingRejected("timestamp_invalid", f"{instrument}_datetime '{stamp}' is not YYYY-MM-DD HH:MM") from exc
    items: list[int | None] = []
    for i in range(1, n_items + 1):
        text = record.get(f"{instrument}_{i}", "")
        if text == "":
            items.append(None)
            continue
        if not text.isdigit() or not 0 <= int(text) <= max_score:
            raise RatingRejected("item_out_of_range", f"{instrument}_{i} = {text!r} is outside 0..{max_score}")
        items.append(int(text))
    total = scoring.complete_total(items) if record.get(f"{instrument}_complete") == "2" else None
    return {
        "rating_key": f"{record['session_id']}:{instrument}:{record.get(f'{instrument}_timepoint', '')}",
        "record_id": record.get("record_id"),
        "session_id": record["session_id"],
        "instrument": instrument,
        "timepoint": record.get(f"{instrument}_timepoint") or None,
        "rated_at": local.replace(tzinfo=ZoneInfo(clinic_timezone)).astimezone(dt.UTC),
        "items_json": json.dumps(items, separators=(",", ":")),
        "items_answered": sum(v is not None for v in items),
        "is_complete": total is not None,
        "total_score": total,
        "dissociation_flag": bool(
            instrument == "cadss" and total is not None and total > scoring.CADSS_DISSOCIATION_OVER
        ),
    }


def parse_rating_batch(data: bytes, batch_id: str, clinic_timezone: str) -> ParsedRatingBatch:
    result = ParsedRatingBatch()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:  # a whole-file problem: callers check this before (file_problem); keep it total anyway
        raise ValueError("REDCap export is not UTF-8")
    for line_no, record in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        result.rows_in += 1
        raw = json.dumps(record, separators=(",", ":"))
        key = f"{record.get('session_id', '')}:{record.get('redcap_repeat_instrument', '')}:line{line_no}"
        try:
            row = rating_row(record, clinic_timezone)
        except RatingRejected as exc:
            result.rejected.append(
                QuarantineRecord(batch_id, SOURCE, key, exc.rule, "critical", f"line {line_no}: {exc.reason}", raw)
            )
            continue
        row.update(batch_id=batch_id, line=line_no, raw_record=raw)
        result.ratings.append(row)
    return result
