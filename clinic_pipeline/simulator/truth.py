"""Ground truth: what the simulated clinics really did, kept apart from what they sent.

Threshold breaches and suicidality flags are evaluated here, on the clean simulated values, with a
deliberately simple implementation of the rules in the config, independent of the pipeline's own code.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from clinic_pipeline.simulator.sessions import Session


def session_breaches(session: Session, rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reading-level safety rule the session's readings break, with the first reading that broke it."""
    readings = session.readings
    found: list[dict[str, Any]] = []

    def add(rule: str, reading_index: int, value: str) -> None:
        r = readings[reading_index]
        found.append(
            {
                "session_id": session.session_id,
                "rule": rule,
                "minutes_from_start": r.minutes_from_start,
                "taken_at": r.taken_at.isoformat(),
                "value": value,
            }
        )

    base = readings[0]
    if base.sbp > rules["predose_bp"]["sbp_over"] or base.dbp > rules["predose_bp"]["dbp_over"]:
        add("predose_bp", 0, f"{base.sbp}/{base.dbp}")
    dosed = [i for i, r in enumerate(readings) if r.minutes_from_start >= 0]

    def first(pred: Any) -> int | None:
        return next((i for i in dosed if pred(readings[i])), None)

    def first_run(pred: Any, length: int) -> int | None:
        return next(
            (i for i in dosed if i + length <= len(readings) and all(pred(readings[j]) for j in range(i, i + length))),
            None,
        )

    r = rules["session_bp_high"]
    if (i := first(lambda x: x.sbp > r["sbp_over"] or x.dbp > r["dbp_over"])) is not None:
        add("session_bp_high", i, f"{readings[i].sbp}/{readings[i].dbp}")
    r = rules["severe_bp_sustained"]
    if (i := first_run(lambda x: x.sbp > r["sbp_over"] or x.dbp > r["dbp_over"], r["consecutive"])) is not None:
        add("severe_bp_sustained", i, f"{readings[i].sbp}/{readings[i].dbp}")
    r = rules["severe_bp_single"]
    if (i := first(lambda x: x.sbp > r["sbp_over"] or x.dbp > r["dbp_over"])) is not None:
        add("severe_bp_single", i, f"{readings[i].sbp}/{readings[i].dbp}")
    r = rules["heart_rate_high"]
    if (i := first(lambda x: x.hr > r["hr_over"])) is not None:
        add("heart_rate_high", i, str(readings[i].hr))
    r = rules["heart_rate_sustained"]
    if (i := first_run(lambda x: x.hr > r["hr_over"], r["consecutive"])) is not None:
        add("heart_rate_sustained", i, str(readings[i].hr))
    r = rules["spo2_low"]
    if (i := first(lambda x: x.spo2 < r["spo2_under"])) is not None:
        add("spo2_low", i, str(readings[i].spo2))
    return found


class GroundTruth:
    """Accumulates truth records day by day and writes them as one JSON file (atomically)."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        self.sessions: list[dict[str, Any]] = []
        self.adverse_events: list[dict[str, Any]] = []
        self.breaches: list[dict[str, Any]] = []
        self.suicidality_flags: list[dict[str, Any]] = []
        self.cadss: list[dict[str, Any]] = []
        self.dissociation_flags: list[dict[str, Any]] = []
        self.questionnaires: Counter[str] = Counter()
        self.batches: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.patients = 0
        self.last_day = -1
        self.readings = 0
        self.observations = 0

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        data = json.loads(path.read_text(encoding="utf-8"))
        truth = cls(data["generator"])
        for name in (
            "sessions",
            "adverse_events",
            "suicidality_flags",
            "dissociation_flags",
            "cadss",
            "batches",
            "faults",
        ):
            setattr(truth, name, data[name])
        truth.breaches = data["threshold_breaches"]
        truth.questionnaires = Counter(data["counts"]["questionnaires"])
        truth.patients = data["counts"]["patients"]
        truth.last_day = data["last_day"]
        truth.readings = data["counts"]["vital_readings"]
        truth.observations = data["counts"]["vital_observations"]
        return truth

    def add_session(self, session: Session, rules: dict[str, Any]) -> None:
        p, plan = session.patient, session.plan
        self.sessions.append(
            {
                "session_id": session.session_id,
                "patient_id": p.patient_id,
                "clinic_id": p.clinic.clinic_id,
                "protocol": session.protocol,
                "infusion_number": plan.infusion_number,
                "is_booster": plan.is_booster,
                "day": plan.day,
                "started_at": session.started_at.isoformat(),
                "readings": len(session.readings),
                "bp_category": session.bp_category,
                "max_sbp": max(r.sbp for r in session.readings),
                "max_dbp": max(r.dbp for r in session.readings),
                "peak_delta_sbp": max(r.sbp for r in session.readings) - session.readings[0].sbp,
                "hx_hypertension": p.hx_hypertension,
                "age": p.age,
            }
        )
        self.readings += len(session.readings)
        self.observations += sum(6 + (r.temp_c is not None) for r in session.readings)
        for e in session.adverse_events:
            self.adverse_events.append(
                {
                    "ae_id": e.ae_id,
                    "session_id": session.session_id,
                    "patient_id": p.patient_id,
                    "clinic_id": p.clinic.clinic_id,
                    "protocol": session.protocol,
                    "infusion_number": plan.infusion_number,
                    "term": e.term,
                    "grade": e.grade,
                    "serious": e.serious,
                    "seriousness_criteria": e.seriousness_criteria,
                    "action_taken": e.action_taken,
                    "final_outcome": e.corrected_outcome or e.outcome,
                    "entered_day": plan.day + e.entry_delay_days,
                }
            )
        self.breaches.extend(session_breaches(session, rules))
        for q in session.questionnaires:
            self.questionnaires[q.instrument] += 1
            if q.instrument == "cadss":
                self.cadss.append(
                    {
                        "session_id": session.session_id,
                        "timepoint": q.timepoint,
                        "total": sum(q.answers),
                        "infusion_number": plan.infusion_number,
                        "protocol": session.protocol,
                    }
                )
                if q.timepoint == "discharge" and sum(q.answers) > rules["cadss_at_discharge"]["cadss_over"]:
                    self.dissociation_flags.append(
                        {
                            "session_id": session.session_id,
                            "rule": "cadss_at_discharge",
                            "questionnaire_id": q.questionnaire_id,
                            "value": sum(q.answers),
                        }
                    )
            elif q.instrument == "phq9" and q.answers[8] >= rules["phq9_item9"]["item9_at_least"]:
                self._flag(session, q, "phq9_item9", q.answers[8])
            elif q.instrument == "cssrs":
                answered = dict(zip(("q1", "q2", "q3", "q4", "q5", "q6"), q.answers, strict=True))
                hits = [k for k in rules["cssrs_high_risk"]["questions"] if answered[k]]
                if hits:
                    self._flag(session, q, "cssrs_high_risk", ",".join(hits))

    def _flag(self, session: Session, q: Any, rule: str, value: Any) -> None:
        self.suicidality_flags.append(
            {
                "questionnaire_id": q.questionnaire_id,
                "instrument": q.instrument,
                "rule": rule,
                "value": value,
                "patient_id": session.patient.patient_id,
                "session_id": session.session_id,
                "authored": q.authored_at.isoformat(),
            }
        )

    def to_json(self) -> dict[str, Any]:
        ae_by_term = Counter(e["term"] for e in self.adverse_events)
        by_clinic: dict[str, Counter[str]] = {}
        by_infusion: dict[str, Counter[str]] = {}
        for e in self.adverse_events:
            by_clinic.setdefault(e["clinic_id"], Counter())[e["term"]] += 1
            key = "1" if e["infusion_number"] == 1 else "2" if e["infusion_number"] == 2 else "3+"
            by_infusion.setdefault(key, Counter())[e["term"]] += 1
        return {
            "generator": self.header,
            # Adverse events are entered up to a day late: those with entered_day > last_day are not in the
            # EHR yet (they land with the next simulated day).
            "last_day": self.last_day,
            "counts": {
                "patients": self.patients,
                "sessions": len(self.sessions),
                "sessions_by_protocol": dict(sorted(Counter(s["protocol"] for s in self.sessions).items())),
                "vital_readings": self.readings,
                "vital_observations": self.observations,
                "questionnaires": dict(sorted(self.questionnaires.items())),
                "adverse_events": len(self.adverse_events),
                "adverse_events_by_term": dict(sorted(ae_by_term.items())),
                "adverse_events_by_clinic_term": {c: dict(sorted(v.items())) for c, v in sorted(by_clinic.items())},
                "adverse_events_by_infusion_term": {k: dict(sorted(v.items())) for k, v in sorted(by_infusion.items())},
                "serious_adverse_events": sum(e["serious"] for e in self.adverse_events),
                "threshold_breaches_by_rule": dict(sorted(Counter(b["rule"] for b in self.breaches).items())),
                "suicidality_flags_by_rule": dict(sorted(Counter(f["rule"] for f in self.suicidality_flags).items())),
                "faults_by_kind": dict(sorted(Counter(f"{f['source']}.{f['kind']}" for f in self.faults).items())),
                "batches_by_source": dict(sorted(Counter(b["source"] for b in self.batches).items())),
            },
            "sessions": self.sessions,
            "adverse_events": self.adverse_events,
            "threshold_breaches": self.breaches,
            "suicidality_flags": self.suicidality_flags,
            "dissociation_flags": self.dissociation_flags,
            "cadss": self.cadss,
            "batches": self.batches,
            "faults": self.faults,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
