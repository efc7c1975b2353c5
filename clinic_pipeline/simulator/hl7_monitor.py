"""Patient-monitor output: HL7 v2.6 ORU^R01 messages (IHE PCD-01 style) in HL7 batch files.

One message per reading time: MSH, PID, PV1 (visit number = EHR session id), OBR, then one OBX per vital.
Monitors code observations either with IEEE 11073 MDC codes or with LOINC/UCUM (see docs/data-contracts).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from clinic_pipeline.simulator.network import Clinic
from clinic_pipeline.simulator.sessions import Session, VitalReading

SEGMENT_END = "\r"

# vital -> (MDC code, MDC mnemonic, LOINC code, LOINC display). MDC codes are [check] (DOMAIN.md).
VITAL_CODES = {
    "sbp": ("150021", "MDC_PRESS_BLD_NONINV_SYS", "8480-6", "Systolic blood pressure"),
    "dbp": ("150022", "MDC_PRESS_BLD_NONINV_DIA", "8462-4", "Diastolic blood pressure"),
    "map": ("150023", "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "Mean blood pressure"),
    "hr": ("147842", "MDC_ECG_HEART_RATE", "8867-4", "Heart rate"),
    "spo2": ("150456", "MDC_PULS_OXIM_SAT_O2", "2708-6", "Oxygen saturation in Arterial blood"),
    "rr": ("151562", "MDC_RESP_RATE", "9279-1", "Respiratory rate"),
    "temp": ("150364", "MDC_TEMP_BODY", "8310-5", "Body temperature"),
}
# unit -> (MDC code, MDC mnemonic, UCUM). MDC unit codes follow the 11073-10101 partition-4 scheme [check].
UNIT_CODES = {
    "mmHg": ("266016", "MDC_DIM_MMHG", "mm[Hg]"),
    "kPa": ("265987", "MDC_DIM_KILO_PASCAL", "kPa"),
    "bpm": ("264864", "MDC_DIM_BEAT_PER_MIN", "/min"),
    "percent": ("262688", "MDC_DIM_PERCENT", "%"),
    "rpm": ("264928", "MDC_DIM_RESP_PER_MIN", "/min"),
    "degC": ("268192", "MDC_DIM_DEGC", "Cel"),
    "degF": ("266560", "MDC_DIM_FAHR", "[degF]"),
}
VITAL_UNITS = {
    "sbp": "mmHg",
    "dbp": "mmHg",
    "map": "mmHg",
    "hr": "bpm",
    "spo2": "percent",
    "rr": "rpm",
    "temp": "degC",
}
MONITOR_APP = {"MDC": "INFINITY_GW", "LOINC": "VITALSLINK"}


def hl7_ts(moment: dt.datetime) -> str:
    """HL7 DTM with seconds and the UTC offset, e.g. 20260105093000-0500."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def escape(text: str) -> str:
    """HL7 escape of the standard delimiters |^~\\& in a text value."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("~", "\\R\\")
        .replace("&", "\\T\\")
    )


@dataclass(slots=True)
class MonitorMessage:
    """One ORU^R01 message as segment strings, with the keys the ground truth refers to."""

    control_id: str
    session_id: str
    minutes_from_start: int
    segments: list[str]

    def text(self) -> str:
        return SEGMENT_END.join(self.segments) + SEGMENT_END


@functools.cache
def _obx_parts(coding: str, vital: str, unit: str) -> tuple[str, str]:
    """The fixed text of an OBX around its value, for one coding style, vital and unit (cached: hot path)."""
    mdc, mnemonic, loinc, display = VITAL_CODES[vital]
    u_mdc, u_mnemonic, ucum = UNIT_CODES[unit]
    if coding == "MDC":
        return f"NM|{mdc}^{mnemonic}^MDC|1.0.1.{mdc}|", f"|{u_mdc}^{u_mnemonic}^MDC|||||F|||"
    return f"NM|{loinc}^{display}^LN|1|", f"|{ucum}^{ucum}^UCUM|||||F|||"


def obx(set_id: int, clinic: Clinic, vital: str, value: str, *, unit: str, when: str, device: str) -> str:
    before, after = _obx_parts(clinic.monitor_coding, vital, unit)
    return f"OBX|{set_id}|{before}{value}{after}{when}||||{device}"


def reading_message(session: Session, reading: VitalReading, control_id: str) -> MonitorMessage:
    patient, clinic = session.patient, session.patient.clinic
    when = hl7_ts(reading.taken_at)
    sent = hl7_ts(reading.taken_at + dt.timedelta(seconds=7))
    app = MONITOR_APP[clinic.monitor_coding]
    device = f"{app}-{clinic.clinic_id}-{patient.number % 6 + 1:02d}"
    segments = [
        f"MSH|^~\\&|{app}^{device}^L|{clinic.clinic_id}|CLINIC_PIPELINE|KETAMINE_NETWORK|{sent}||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        f"PID|||{patient.mrn}^^^{clinic.clinic_id}^MR||{escape(patient.family_name)}^{escape(patient.given_name)}"
        f"^^^^^L||{patient.birth_date:%Y%m%d}|{'F' if patient.sex == 'female' else 'M'}",
        f"PV1||O|{clinic.clinic_id}^INFUSION^{patient.number % 6 + 1}||||||||||||||||{session.session_id}"
        f"^^^{clinic.clinic_id}^VN",
        f"OBR|1|{session.session_id}-{reading.minutes_from_start:+04d}^{clinic.clinic_id}|{control_id}^{app}"
        f"|182777000^Monitoring of patient^SCT|||{when}" + "|" * 18 + "F",  # OBR-25 result status
    ]
    mean = round((reading.sbp + 2 * reading.dbp) / 3)
    values = [
        ("sbp", reading.sbp),
        ("dbp", reading.dbp),
        ("map", mean),
        ("hr", reading.hr),
        ("spo2", reading.spo2),
        ("rr", reading.rr),
    ]
    if reading.temp_c is not None:
        values.append(("temp", reading.temp_c))
    for i, (vital, value) in enumerate(values, start=1):
        segments.append(obx(i, clinic, vital, str(value), unit=VITAL_UNITS[vital], when=when, device=device))
    return MonitorMessage(control_id, session.session_id, reading.minutes_from_start, segments)


def clinic_day_messages(clinic: Clinic, sessions: list[Session], day_stamp: str) -> list[MonitorMessage]:
    """All readings of a clinic's sessions of one day, in time order, with network-unique control ids."""
    rows = sorted(((r.taken_at, s.session_id, s, r) for s in sessions for r in s.readings), key=lambda x: x[:2])
    return [
        reading_message(session, reading, f"{clinic.clinic_id}{day_stamp}{i:05d}")
        for i, (_, _, session, reading) in enumerate(rows, start=1)
    ]


def batch_envelope(clinic: Clinic, batch_id: str, created: dt.datetime, message_count: int) -> tuple[str, str]:
    """The HL7 batch envelope around the messages: FHS and BHS before, BTS (message count) and FTS after."""
    app = MONITOR_APP[clinic.monitor_coding]
    ts = hl7_ts(created)
    head = (
        f"FHS|^~\\&|{app}|{clinic.clinic_id}|CLINIC_PIPELINE|KETAMINE_NETWORK|{ts}||{batch_id}.hl7||{batch_id}\r"
        f"BHS|^~\\&|{app}|{clinic.clinic_id}|CLINIC_PIPELINE|KETAMINE_NETWORK|{ts}||||{batch_id}\r"
    )
    return head, f"BTS|{message_count}\rFTS|1\r"
