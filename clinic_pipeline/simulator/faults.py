"""Fault injection: the ways real clinic feeds go wrong, each recorded with its exact location.

Every unit (message, resource line, CSV row, EHR row, batch file) is hit at most once, with probability
`rate x weight`, so each fault has one expected outcome the pipeline can be checked against:

    quarantine_row     the record must end in quarantine with a rule naming the problem
    quarantine_file    the whole file must be quarantined (it cannot be read safely)
    convert_unit       the value must be converted to the canonical unit, and the conversion logged
    drop_duplicate     the repeated record must be recognised and not counted twice
    reorder            records arrive out of time order; results must not depend on it
    stage_incomplete   the record is staged but flagged incomplete (no total score)
    ignore_duplicate_batch   a re-delivered batch must change nothing
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clinic_pipeline.simulator.hl7_monitor import UNIT_CODES, MonitorMessage

EXPECTED_OUTCOME = {
    ("monitor", "malformed_segment"): "quarantine_row",
    ("monitor", "bad_escape"): "quarantine_row",
    ("monitor", "wrong_unit_kpa"): "convert_unit",
    ("monitor", "wrong_unit_degf"): "convert_unit",
    ("monitor", "impossible_value"): "quarantine_row",
    ("monitor", "duplicate_message"): "drop_duplicate",
    ("monitor", "out_of_order"): "reorder",
    ("monitor", "unknown_session"): "quarantine_row",
    ("monitor", "missing_required"): "quarantine_row",
    ("monitor", "bad_encoding"): "quarantine_row",
    ("epro", "partial_questionnaire"): "stage_incomplete",
    ("epro", "missing_required"): "quarantine_row",
    ("epro", "unknown_patient"): "quarantine_row",
    ("epro", "bad_encoding"): "quarantine_row",
    ("epro", "impossible_value"): "quarantine_row",
    ("redcap", "partial_questionnaire"): "stage_incomplete",
    ("redcap", "impossible_value"): "quarantine_row",
    ("redcap", "unknown_session"): "quarantine_row",
    ("ehr", "wrong_unit_lb"): "convert_unit",
    ("ehr", "impossible_value"): "quarantine_row",
    ("ehr", "missing_required"): "quarantine_row",
    ("ehr", "unknown_reference"): "quarantine_row",
    ("batch", "truncated_file"): "quarantine_file",
    ("batch", "undecodable_file"): "quarantine_file",
    ("batch", "duplicate_batch"): "ignore_duplicate_batch",
}
KPA_PER_MMHG = 0.133322


@dataclass
class FaultLog:
    """Collects injected faults; the ground truth file gets them in order."""

    faults: list[dict[str, Any]] = field(default_factory=list)

    def add(self, source: str, kind: str, batch_id: str, file: str | None, **location: Any) -> dict[str, Any]:
        fault = {
            "fault_id": len(self.faults) + 1,
            "source": source,
            "kind": kind,
            "expected": EXPECTED_OUTCOME[(source, kind)],
            "batch_id": batch_id,
            "file": file,
            "location": location,
        }
        self.faults.append(fault)
        return fault


def choose_fault(rng: np.random.Generator, rate: float, weights: dict[str, float]) -> str | None:
    """At most one fault kind per unit: kind k hits with probability `rate x weight[k]`."""
    if rate <= 0 or rng.random() >= rate * sum(weights.values()):
        return None
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


@dataclass(frozen=True)
class FaultSite:
    """Where faults are being injected: one batch of one source, with its own random stream and rate."""

    source: str
    rng: np.random.Generator
    rate: float
    weights: dict[str, float]
    batch_id: str
    file: str | None
    log: FaultLog

    def draw(self, not_applicable: tuple[str, ...] = ()) -> str | None:
        """A fault kind for this unit; kinds that cannot apply to it (no temperature to convert...) are left out,
        so every kind that is drawn is also injected and recorded."""
        weights = {k: w for k, w in self.weights.items() if k not in not_applicable}
        return choose_fault(self.rng, self.rate, weights)

    def record(self, kind: str, **location: Any) -> dict[str, Any]:
        return self.log.add(self.source, kind, self.batch_id, self.file, **location)


# --- monitor (HL7) ------------------------------------------------------------------------------------------


def _obx_fields(msg: MonitorMessage, vital_codes: tuple[str, ...]) -> list[int]:
    return [
        i for i, s in enumerate(msg.segments) if s.startswith("OBX|") and s.split("|")[3].split("^")[0] in vital_codes
    ]


def _set_field(segment: str, index: int, value: str) -> str:
    fields = segment.split("|")
    fields[index] = value
    return "|".join(fields)


def _restate_unit(obx: str, unit: str, convert: Any) -> str:
    """The same observation in another unit, stated in OBX-6 in the message's own coding style."""
    fields = obx.split("|")
    fields[5] = f"{convert(float(fields[5])):.1f}"
    mdc, mnemonic, ucum = UNIT_CODES[unit]
    fields[6] = f"{mdc}^{mnemonic}^MDC" if fields[6].endswith("^MDC") else f"{ucum}^{ucum}^UCUM"
    return "|".join(fields)


def inject_monitor_faults(site: FaultSite, messages: list[MonitorMessage]) -> tuple[list[MonitorMessage], set[str]]:
    """Mutate messages in place; returns the final message order and the control ids to encode as Latin-1."""
    latin1: set[str] = set()
    order = list(messages)
    duplicates: list[tuple[int, MonitorMessage]] = []
    temperature_codes = ("150364", "8310-5")
    for position, msg in enumerate(messages):
        skip = () if _obx_fields(msg, temperature_codes) else ("wrong_unit_degf",)
        kind = site.draw(skip + (("out_of_order",) if position + 1 == len(messages) else ()))
        if kind is None:
            continue
        where = {
            "control_id": msg.control_id,
            "session_id": msg.session_id,
            "minutes_from_start": msg.minutes_from_start,
        }
        obx = [i for i, s in enumerate(msg.segments) if s.startswith("OBX|")]
        if kind == "malformed_segment":  # a stray carriage return splits an OBX in two
            i = int(site.rng.choice(obx))
            seg = msg.segments[i]
            cut = seg.index("|", seg.index("|", 4) + 1) + 3
            msg.segments[i : i + 1] = [seg[:cut], seg[cut:]]
            site.record(kind, segment_index=i, **where)
        elif kind == "bad_escape":  # an unterminated escape sequence inside a numeric value
            i = int(site.rng.choice(obx))
            value = msg.segments[i].split("|")[5]
            msg.segments[i] = _set_field(msg.segments[i], 5, value + "\\X0")
            site.record(kind, segment_index=i, field="OBX-5", **where)
        elif kind == "wrong_unit_kpa":  # a monitor configured for kPa (units are stated correctly)
            for i in _obx_fields(msg, ("150021", "150022", "150023", "8480-6", "8462-4", "8478-0")):
                msg.segments[i] = _restate_unit(msg.segments[i], "kPa", lambda mmhg: mmhg * KPA_PER_MMHG)
            site.record(kind, unit="kPa", **where)
        elif kind == "wrong_unit_degf":
            i = _obx_fields(msg, temperature_codes)[0]
            msg.segments[i] = _restate_unit(msg.segments[i], "degF", lambda celsius: celsius * 9 / 5 + 32)
            site.record(kind, unit="degF", **where)
        elif kind == "impossible_value":
            vital, value = [("sbp", "400"), ("spo2", "130"), ("hr", "0"), ("dbp", "-12")][int(site.rng.integers(4))]
            codes = {
                "sbp": ("150021", "8480-6"),
                "spo2": ("150456", "2708-6"),
                "hr": ("147842", "8867-4"),
                "dbp": ("150022", "8462-4"),
            }[vital]
            i = _obx_fields(msg, codes)[0]
            msg.segments[i] = _set_field(msg.segments[i], 5, value)
            site.record(kind, vital=vital, value=value, segment_index=i, **where)
        elif kind == "duplicate_message":  # the gateway re-sends a message later in the same file
            duplicates.append((int(site.rng.integers(position, len(messages))) + 1, copy.deepcopy(msg)))
            site.record(kind, **where)
        elif kind == "out_of_order":
            j = order.index(msg)
            if j + 1 < len(order):
                order[j], order[j + 1] = order[j + 1], order[j]
                site.record(kind, swapped_with=order[j].control_id, **where)
        elif kind == "unknown_session":
            msg.segments[2] = _set_field(msg.segments[2], 19, f"{msg.session_id[:5]}P99{position:03d}-I001^^^X^VN")
            site.record(kind, field="PV1-19", **where)
        elif kind == "missing_required":
            if site.rng.random() < 0.5:
                msg.segments[2] = _set_field(msg.segments[2], 19, "")
                site.record(kind, field="PV1-19", **where)
            else:
                i = int(site.rng.choice(obx))
                msg.segments[i] = _set_field(msg.segments[i], 5, "")
                site.record(kind, field="OBX-5", segment_index=i, **where)
        elif kind == "bad_encoding":  # name typed on a Latin-1 workstation; MSH-18 still says UTF-8
            msg.segments[1] = _set_field(msg.segments[1], 5, "Nuñez-Müller^José^^^^^L")
            latin1.add(msg.control_id)
            site.record(kind, **where)
    for insert_at, dup in sorted(duplicates, key=lambda d: d[0], reverse=True):
        order.insert(min(insert_at, len(order)), dup)
    return order, latin1


# --- ePRO (FHIR QuestionnaireResponse) -----------------------------------------------------------------------


def inject_epro_fault(site: FaultSite, resource: dict[str, Any], line: int) -> bool:
    """Mutate one QuestionnaireResponse; returns True when the line must be written with bad bytes."""
    kind = site.draw()
    if kind is None:
        return False
    where = {"line": line, "questionnaire_id": resource["id"], "questionnaire": resource["questionnaire"]}
    if kind == "partial_questionnaire":
        answered = [i for i, item in enumerate(resource["item"]) if "answer" in item]
        drop = sorted(site.rng.choice(answered, size=min(len(answered), int(site.rng.integers(1, 4))), replace=False))
        for i in drop:
            del resource["item"][i]["answer"]
        resource["status"] = "in-progress"
        site.record(kind, unanswered=[resource["item"][i]["linkId"] for i in drop], **where)
    elif kind == "missing_required":
        missing = "subject" if site.rng.random() < 0.5 else "authored"
        del resource[missing]
        site.record(kind, field=missing, **where)
    elif kind == "unknown_patient":
        resource["subject"]["identifier"]["value"] = f"UNK{line:06d}"  # no real MRN starts with letters
        site.record(kind, field="subject", value=f"UNK{line:06d}", **where)
    elif kind == "impossible_value":
        item = resource["item"][int(site.rng.integers(len(resource["item"])))]
        if "answer" not in item:
            item["answer"] = [{}]
        item["answer"][0] = {"valueCoding": {"system": "http://loinc.org", "code": "LA9999-9", "display": "?"}}
        site.record(kind, link_id=item["linkId"], **where)
    elif kind == "bad_encoding":
        site.record(kind, **where)
        return True
    return False


# --- REDCap CSV ------------------------------------------------------------------------------------------------


def inject_redcap_fault(site: FaultSite, row: dict[str, str], line: int) -> None:
    kind = site.draw()
    if kind is None:
        return
    prefix = row["redcap_repeat_instrument"]
    items = [k for k in row if k.startswith(f"{prefix}_") and k.split("_")[-1].isdigit()]
    where = {
        "line": line,
        "record_id": row["record_id"],
        "session_id": row["session_id"],
        "instrument": prefix,
        "timepoint": row[f"{prefix}_timepoint"],
    }
    if kind == "partial_questionnaire":
        blank = [
            items[int(i)] for i in sorted(site.rng.choice(len(items), size=int(site.rng.integers(1, 6)), replace=False))
        ]
        for key in blank:
            row[key] = ""
        row[f"{prefix}_complete"] = "0"
        site.record(kind, blank_fields=blank, **where)
    elif kind == "impossible_value":
        key = items[int(site.rng.integers(len(items)))]
        row[key] = "7" if prefix == "cadss" else "9"
        site.record(kind, field=key, value=row[key], **where)
    elif kind == "unknown_session":
        row["session_id"] = f"{row['session_id'][:5]}P99{line:03d}-I001"
        site.record(kind, field="session_id", value=row["session_id"], **where)


# --- EHR rows -----------------------------------------------------------------------------------------------------


def inject_ehr_fault(site: FaultSite, table: str, row: dict[str, Any]) -> None:
    only = {"wrong_unit_lb": "patients", "unknown_reference": "adverse_events"}
    kind = site.draw(tuple(k for k, t in only.items() if t != table))
    if kind is None:
        return
    key_column = {"patients": "patient_id", "infusion_sessions": "session_id", "adverse_events": "ae_id"}[table]
    where = {"table": table, "key": row[key_column]}
    if kind == "wrong_unit_lb":
        row["weight_value"], row["weight_unit"] = round(row["weight_value"] * 2.20462, 1), "lb"
        site.record(kind, column="weight_value", **where)
    elif kind == "impossible_value":
        column, value = {
            "patients": ("weight_value", 0.0),
            "infusion_sessions": ("dose_mg_per_kg", 50.0),
            "adverse_events": ("ctcae_grade", 9),
        }[table]
        row[column] = value
        site.record(kind, column=column, value=value, **where)
    elif kind == "missing_required":
        column = {"patients": "weight_value", "infusion_sessions": "started_at", "adverse_events": "term"}[table]
        row[column] = None
        site.record(kind, column=column, **where)
    elif kind == "unknown_reference":
        row["session_id"] = row["session_id"][:5] + "P99999-I001"
        site.record(kind, column="session_id", **where)
