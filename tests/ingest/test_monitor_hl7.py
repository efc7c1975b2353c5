"""The fast HL7 splitter against python-hl7, message by message, on faulty simulator output; and edge cases."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import generate
from tests.simulator.landing_reader import hl7_files
from transforms.monitor_hl7 import (
    MessageRejected,
    file_problem,
    parse_monitor_batch,
    parse_reading,
    split_message_with_python_hl7,
    split_messages,
)

MESSAGE = (
    "MSH|^~\\&|VITALSLINK^DEV-1^L|C001|CLINIC_PIPELINE|KETAMINE_NETWORK|20260105093007-0500||ORU^R01^ORU_R01|"
    "C00120260105001|P|2.6|||NE|AL||UNICODE UTF-8\r"
    "PID|||0112345^^^C001^MR||Example^Test^^^^^L||19700101|F\r"
    "PV1||O|C001^INFUSION^1||||||||||||||||C001-P00001-I001^^^C001^VN\r"
    "OBX|1|NM|8480-6^Systolic blood pressure^LN|1|{sbp}|{unit}^{unit}^UCUM|||||F|||20260105093000-0500\r"
    "OBX|2|NM|8462-4^Diastolic blood pressure^LN|1|80|mm[Hg]^mm[Hg]^UCUM|||||F|||20260105093000-0500"
)


def _reading(sbp: str = "128", unit: str = "mm[Hg]") -> dict:
    return parse_reading(MESSAGE.format(sbp=sbp, unit=unit), {})


def _outcome(text: str, **kw):
    try:
        return parse_reading(text, {}, **kw)
    except MessageRejected as exc:
        return ("rejected", exc.rule)


def test_fast_path_and_python_hl7_agree_on_every_simulated_message(tmp_path):
    net = generate(tmp_path, clinics=2, days=2, seed=17, faults=0.1)
    compared = rejected = 0
    for path in hl7_files(net.landing):
        for raw in split_messages(path.read_bytes()):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue

            fast, reference = _outcome(text), _outcome(text, splitter=split_message_with_python_hl7)
            assert fast == reference, text[:200]
            compared += 1
            rejected += isinstance(fast, tuple)
    assert compared > 300 and rejected > 5


def test_a_reading_is_typed_in_utc_with_units_in_names():
    row = _reading()
    assert row["sbp_mmhg"] == 128 and row["dbp_mmhg"] == 80
    assert row["observed_at"] == dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
    assert row["session_id"] == "C001-P00001-I001" and row["mrn"] == "0112345"


def test_kpa_is_converted_and_reported():
    conversions: dict[str, int] = {}
    row = parse_reading(MESSAGE.format(sbp="17.1", unit="kPa"), conversions)
    assert row["sbp_mmhg"] == pytest.approx(128.3, abs=0.1)
    assert conversions == {"sbp:UCUM:kPa->mm[Hg]": 1} and "kPa" in row["converted_units"]


@pytest.mark.parametrize(
    ("sbp", "unit", "rule"),
    [
        ("", "mm[Hg]", "missing_required"),
        ("12\\X0", "mm[Hg]", "hl7_bad_escape"),
        ("abc", "mm[Hg]", "value_not_numeric"),
        ("120", "cm[H2O]", "unit_unknown"),
        ("12\\F\\8", "mm[Hg]", "value_not_numeric"),
    ],
)
def test_broken_values_are_rejected_with_their_rule(sbp, unit, rule):
    with pytest.raises(MessageRejected) as exc:
        _reading(sbp, unit)
    assert exc.value.rule == rule


def test_a_whole_file_problem_is_named():
    good = ("FHS|^~\\&|A\rBHS|^~\\&|A\r" + MESSAGE.format(sbp="120", unit="mm[Hg]") + "\rBTS|1\rFTS|1\r").encode()
    assert file_problem(good, 1) is None
    assert "truncated" in file_problem(good[: len(good) // 2], 1)
    assert "UTF-16" in file_problem(good.decode().encode("utf-16"), 1) or "not 8-bit" in file_problem(
        good.decode().encode("utf-16"), 1
    )
    assert "declares 2" in file_problem(good, 2)


def test_duplicate_and_undecodable_messages_are_held_individually():
    message = MESSAGE.format(sbp="120", unit="mm[Hg]")
    latin1 = message.replace("Example", "Müller").encode("latin-1")
    data = b"\r".join([message.encode(), message.encode(), latin1.replace(b"C00120260105001", b"C00120260105002")])
    parsed = parse_monitor_batch(data, "monitor-C001-20260105")
    assert parsed.messages_in == 3 and len(parsed.readings) == 1
    assert sorted(r.rule for r in parsed.rejected) == ["duplicate_message", "hl7_encoding"]
    assert all("Müller" not in r.reason for r in parsed.rejected)
