"""Parse a patient-monitor HL7 v2 batch file into vital-sign readings (one row per ORU^R01 message).

Each message is decoded, checked and parsed on its own (python-hl7), so one bad message is quarantined with
its rule while the rest of the file flows on. A file that cannot be read as HL7 at all is rejected whole.
Observation codes (IEEE 11073 MDC or LOINC) and units (MDC or UCUM) map through `code_maps/`; values in a
non-canonical unit are converted and the conversion is reported.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import hl7

from transforms.quarantine import QuarantineRecord
from transforms.units import CODE_MAPS, unit_rule

SOURCE = "monitor"
SEGMENT_ID = re.compile(rb"^[A-Z][A-Z0-9]{2}\|")
VALID_ESCAPES = re.compile(
    r"\\(?:[FSTRE]|[HN]|X[0-9A-Fa-f]+|Z[^\\|]*|\.br|\.sp\d*|\.in[+-]?\d*|\.ti[+-]?\d*|\.sk\d*|\.ce|\.fi|\.nf"
    r"|C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{6})\\"
)
HL7_TS = re.compile(r"^(\d{12})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})$")
VITAL_COLUMNS = ["sbp_mmhg", "dbp_mmhg", "map_mmhg", "hr_bpm", "spo2_pct", "rr_per_min", "temp_c"]
OBX_VALUE_SYSTEMS = {"MDC": "MDC", "LN": "LN"}


@dataclass(frozen=True, slots=True)
class ObservationCode:
    vital: str
    column: str
    canonical_unit: str


@functools.cache
def observation_codes() -> dict[tuple[str, str], ObservationCode]:
    with (CODE_MAPS / "monitor_observation_codes.csv").open(encoding="utf-8") as f:
        return {
            (row["code_system"], row["code"]): ObservationCode(row["vital"], row["column"], row["canonical_unit"])
            for row in csv.DictReader(f)
        }


class MessageRejected(Exception):
    """A message that must go to quarantine: carries the rule and a PHI-free reason."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass
class ParsedMonitorBatch:
    readings: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[QuarantineRecord] = field(default_factory=list)
    messages_in: int = 0
    conversions: dict[str, int] = field(default_factory=dict)


def split_messages(data: bytes) -> list[bytes]:
    """Raw messages of an HL7 batch file (FHS/BHS/BTS/FTS envelope removed); segments end with CR."""
    messages: list[list[bytes]] = []
    for segment in data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSH|"):
            messages.append([segment])
        elif segment[:4] in (b"FHS|", b"BHS|", b"BTS|", b"FTS|") or not segment:
            continue
        elif messages:
            messages[-1].append(segment)
    return [b"\r".join(m) for m in messages]


def file_problem(data: bytes, declared_records: int | None) -> str | None:
    """Why a whole file cannot be read as an HL7 batch, or None. (Checksums are checked before this.)"""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        return "file is not 8-bit text (UTF-16 or binary): cannot be read as HL7 v2"
    if not data.startswith((b"FHS|", b"BHS|", b"MSH|")):
        return "file does not start with an FHS, BHS or MSH segment"
    trailer = re.search(rb"\rBTS\|(\d*)", data)
    if data.startswith(b"FHS|") and (trailer is None or not data.rstrip(b"\r\n").endswith((b"FTS|1", b"FTS|"))):
        return "batch envelope is incomplete (no BTS/FTS trailer): file truncated"
    count = len(split_messages(data))
    if trailer is not None and trailer.group(1) and int(trailer.group(1)) != count:
        return f"BTS-1 declares {int(trailer.group(1))} messages but the file holds {count}"
    if declared_records is not None and declared_records != count:
        return f"marker declares {declared_records} records but the file holds {count}"
    return None


def hl7_datetime(value: str) -> dt.datetime:
    """HL7 DTM with a mandatory UTC offset -> aware UTC datetime."""
    match = HL7_TS.match(value)
    if not match:
        raise MessageRejected("timestamp_invalid", f"observation time '{value}' is not YYYYMMDDHHMM[SS]+/-ZZZZ")
    stamp = match.group(1) + (match.group(2) or "00") + match.group(3)
    return dt.datetime.strptime(stamp, "%Y%m%d%H%M%S%z").astimezone(dt.UTC)


def _control_id(raw: bytes) -> str | None:
    fields = raw.split(b"\r", 1)[0].split(b"|")
    return fields[9].decode("ascii", errors="replace") if len(fields) > 9 and fields[9] else None


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A message as segment id -> list of field lists, indexed like HL7 (MSH-1 is the field separator)."""

    segments: dict[str, list[list[str]]]
    component_sep: str = "^"
    repetition_sep: str = "~"

    def first(self, name: str) -> list[str]:
        found = self.segments.get(name)
        if not found:
            raise MessageRejected("missing_required", f"segment {name} is missing")
        return found[0]

    def component(self, fields: list[str], index: int, component: int) -> str:
        """Component of the first repetition of a field, '' when absent."""
        if len(fields) <= index:
            return ""
        parts = fields[index].split(self.repetition_sep)[0].split(self.component_sep)
        return parts[component] if component < len(parts) else ""


def split_message(text: str) -> SplitMessage:
    """The fast path: split on the delimiters the message declares in MSH-1/MSH-2 (HL7 v2 encoding rules).

    python-hl7 builds a full object tree (~1.6 ms a message here: a network-month of monitor data would take
    four minutes on one core). This splitter yields the same fields for every message the simulator emits,
    faulty ones included; tests/ingest/test_monitor_hl7.py checks it against python-hl7 message by message,
    and `make bench` measures both.
    """
    if not text.startswith("MSH") or len(text) < 8:
        raise MessageRejected("hl7_parse_error", "message does not start with an MSH segment")
    field_sep, encoding = text[3], text[4:8]
    segments: dict[str, list[list[str]]] = {}
    for segment in text.split("\r"):
        fields = segment.split(field_sep)
        if fields[0] == "MSH":
            fields = ["MSH", field_sep, *fields[1:]]
        segments.setdefault(fields[0], []).append(fields)
    return SplitMessage(segments, component_sep=encoding[0], repetition_sep=encoding[1])


def split_message_with_python_hl7(text: str) -> SplitMessage:
    """The reference path: the same structure from python-hl7's parser (used to verify the fast path)."""
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises several types for broken structure
        raise MessageRejected("hl7_parse_error", f"python-hl7 cannot parse the message: {type(exc).__name__}") from exc
    segments: dict[str, list[list[str]]] = {}
    for segment in message:
        fields = [str(f) for f in segment]
        segments.setdefault(fields[0], []).append(fields)
    return SplitMessage(segments)


def parse_reading(text: str, conversions: dict[str, int], *, splitter: Any = split_message) -> dict[str, Any]:
    """One ORU^R01 message -> one reading row. Raises MessageRejected with the rule it breaks."""
    for segment in text.split("\r"):
        if not SEGMENT_ID.match(segment.encode()):
            raise MessageRejected("hl7_malformed_segment", "a segment does not start with a segment id and '|'")
        stripped = VALID_ESCAPES.sub("", segment)
        if "\\" in stripped.replace("^~\\&", ""):
            raise MessageRejected("hl7_bad_escape", f"invalid escape sequence in a {segment[:3]} segment")
    message = splitter(text)
    msh = message.first("MSH")
    if message.component(msh, 9, 0) != "ORU" or message.component(msh, 9, 1) != "R01":
        raise MessageRejected("hl7_message_type", f"message type {msh[9] if len(msh) > 9 else ''} is not ORU^R01")
    pv1, pid = message.first("PV1"), message.first("PID")
    session_id = message.component(pv1, 19, 0)
    if not session_id:
        raise MessageRejected("missing_required", "PV1-19 visit number (session id) is empty")
    row: dict[str, Any] = {
        "session_id": session_id,
        "mrn": message.component(pid, 3, 0),
        "observed_at": None,
        "converted_units": "",
    }
    row.update(dict.fromkeys(VITAL_COLUMNS))
    converted: list[str] = []
    for obx in message.segments.get("OBX", []):
        code_system, code = message.component(obx, 3, 2), message.component(obx, 3, 0)
        observation = observation_codes().get((code_system, code))
        if observation is None:
            continue  # other device parameters (e.g. NIBP cuff mode) are not vital signs we stage
        value_text = obx[5] if len(obx) > 5 else ""
        if value_text == "":
            raise MessageRejected("missing_required", f"OBX-5 value of {observation.vital} is empty")
        try:
            value = float(value_text)
        except ValueError as exc:
            raise MessageRejected("value_not_numeric", f"OBX-5 value of {observation.vital} is not a number") from exc
        unit_system = "MDC" if message.component(obx, 6, 2) == "MDC" else "UCUM"
        unit_code = message.component(obx, 6, 0)
        rule = unit_rule(unit_system, unit_code)
        if rule is None or rule.canonical_unit != observation.canonical_unit:
            raise MessageRejected(
                "unit_unknown", f"unit {unit_system}:{unit_code} is not valid for {observation.vital}"
            )
        if rule.is_conversion:
            value = round(rule.apply(value), 1)
            key = f"{observation.vital}:{unit_system}:{unit_code}->{observation.canonical_unit}"
            conversions[key] = conversions.get(key, 0) + 1
            converted.append(key)
        row[observation.column] = value
        if row["observed_at"] is None:
            when = obx[14] if len(obx) > 14 else ""
            if not when:
                raise MessageRejected("missing_required", "OBX-14 observation time is empty")
            row["observed_at"] = hl7_datetime(when)
    if row["observed_at"] is None:
        raise MessageRejected("missing_required", "message has no vital-sign observation")
    row["converted_units"] = ",".join(converted)
    return row


def parse_monitor_batch(data: bytes, batch_id: str) -> ParsedMonitorBatch:
    """All readings of a batch file; every message ends as a reading or a quarantine record, none lost."""
    result = ParsedMonitorBatch()
    seen: set[str] = set()
    for index, raw in enumerate(split_messages(data), start=1):
        result.messages_in += 1
        control_id = _control_id(raw) or f"{batch_id}#{index}"
        raw_text = raw.decode("utf-8", errors="backslashreplace")

        def reject(
            rule: str, reason: str, severity: str = "critical", key: str = control_id, raw: str = raw_text
        ) -> None:
            result.rejected.append(QuarantineRecord(batch_id, SOURCE, key, rule, severity, reason, raw))

        if control_id in seen:
            reject(
                "duplicate_message",
                f"MSH-10 {control_id} already read in this batch; first copy kept",
                "info",
                f"{control_id}#dup{index}",
            )
            continue
        seen.add(control_id)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reject("hl7_encoding", f"message is not valid UTF-8 as MSH-18 declares (byte {exc.start})")
            continue
        try:
            row = parse_reading(text, result.conversions)
        except MessageRejected as exc:
            reject(exc.rule, exc.reason)
            continue
        row.update(batch_id=batch_id, control_id=control_id, message_index=index, raw_record=raw_text)
        result.readings.append(row)
    return result
