"""Drive the clinic network day by day and write what each clinic system emits into the landing zone.

A day's output is a pure function of (seed, options, day), so a run can stop and resume (state file in the
landing zone) and still produce exactly what one long run would have produced.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from clinic_pipeline.simulator import ehr, epro, faults, hl7_monitor
from clinic_pipeline.simulator.config import config_fingerprint, load_network_config
from clinic_pipeline.simulator.faults import FaultSite
from clinic_pipeline.simulator.landing import DEFAULT_STREAM, LandingZone, atomic_write
from clinic_pipeline.simulator.network import (
    Clinic,
    Patient,
    PlannedSession,
    build_clinics,
    build_patient,
    enrolment_days,
    rng_for,
)
from clinic_pipeline.simulator.sessions import AdverseEvent, Session, build_session
from clinic_pipeline.simulator.truth import GroundTruth

log = logging.getLogger(__name__)
STATE_FILE = ".simulator-state.json"
LOOKBACK_DAYS = 4  # late AE entries (1 day) and corrections (<= 3 days) reach back this far
TAG_FAULTS = 9
SOURCE_CODES = {"monitor": 1, "epro": 2, "redcap": 3, "ehr": 4, "batch": 5}


@dataclass(frozen=True)
class SimulationOptions:
    out: Path
    clinics: int = 5
    days: int | None = 7
    seed: int = 7
    faults: float = 0.0
    ehr_url: str | None = None
    redis_url: str | None = None
    redis_stream: str = DEFAULT_STREAM
    truth_out: Path | None = None
    start_date: str | None = None
    continuous: bool = False
    interval_s: float = 10.0
    config_path: Path | None = None

    @property
    def truth_path(self) -> Path:
        return self.truth_out or self.out.parent / f"{self.out.name}-truth.json"

    @property
    def ehr_database_url(self) -> str:
        return self.ehr_url or f"sqlite:///{(self.out / 'ehr.sqlite').resolve()}"


@dataclass(frozen=True)
class FileBatch:
    """One clinic-day file as a clinic system sends it."""

    source: str
    batch_id: str
    clinic: Clinic
    day: int
    rel: str
    data: bytes
    records: int
    fmt: str


@dataclass(frozen=True)
class SimulationSummary:
    first_day: int
    last_day: int
    sessions: int
    batches: int
    faults: int
    truth_path: Path


class NetworkSimulator:
    def __init__(self, options: SimulationOptions) -> None:
        self.options = options
        self.config = load_network_config(options.config_path)
        if options.start_date:
            self.config["network"]["start_date"] = options.start_date
        self.start = dt.date.fromisoformat(self.config["network"]["start_date"])
        self.clinics = build_clinics(self.config, options.seed, options.clinics)
        self._patients: dict[int, list[Patient]] = {c.index: [] for c in self.clinics}
        self._plans_by_day: dict[int, list[tuple[Patient, PlannedSession]]] = defaultdict(list)
        self._patients_by_emit_day: dict[int, list[Patient]] = defaultdict(list)
        self._built_to_day = -(10**9)
        self._session_cache: dict[int, list[Session]] = {}
        options.out.mkdir(parents=True, exist_ok=True)
        self.landing = LandingZone(options.out, options.redis_url, options.redis_stream)
        self.engine = ehr.create_engine(options.ehr_database_url)
        self.fault_log = faults.FaultLog()
        self.truth: GroundTruth

    # --- state -------------------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        return {
            "seed": self.options.seed,
            "clinics": self.options.clinics,
            "faults": self.options.faults,
            "start_date": self.start.isoformat(),
            "config_sha256": config_fingerprint(self.options.config_path),
        }

    def _resume_day(self) -> int:
        state_path = self.options.out / STATE_FILE
        if not state_path.exists():
            self.truth = GroundTruth(self.header())
            return 0
        state = json.loads(state_path.read_text())
        if state["network"] != self.header():
            raise SystemExit(
                f"{self.options.out} holds a different network ({state['network']}); use a new --out directory"
            )
        self.truth = GroundTruth.load(self.options.truth_path)
        self.fault_log.faults = self.truth.faults
        return int(state["next_day"])

    def _save_state(self, next_day: int) -> None:
        self.truth.faults = self.fault_log.faults
        self.truth.write(self.options.truth_path)
        state = {"network": self.header(), "next_day": next_day}
        atomic_write(self.options.out / STATE_FILE, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())

    # --- population --------------------------------------------------------------------------------------

    def _build_population(self, last_day: int) -> None:
        if last_day <= self._built_to_day:
            return
        horizon = last_day + 7  # build a week ahead so continuous mode rebuilds rarely
        for clinic in self.clinics:
            known = self._patients[clinic.index]
            for number, enrolled in enumerate(enrolment_days(self.config, self.options.seed, clinic, horizon), 1):
                if number <= len(known):
                    continue
                patient = build_patient(self.config, self.options.seed, clinic, number, enrolled)
                known.append(patient)
                self._patients_by_emit_day[max(enrolled, 0)].append(patient)
                for plan in patient.sessions:
                    self._plans_by_day[plan.day].append((patient, plan))
        self._built_to_day = horizon

    def sessions_on(self, day: int) -> list[Session]:
        if day not in self._session_cache:
            plans = sorted(self._plans_by_day.get(day, []), key=lambda pp: (pp[0].clinic.index, pp[0].number))
            self._session_cache[day] = [build_session(self.config, self.options.seed, p, plan) for p, plan in plans]
        return self._session_cache[day]

    # --- one day -----------------------------------------------------------------------------------------

    def local_time(self, clinic: Clinic, day: int, hour: int, minute: int = 0) -> dt.datetime:
        date = self.start + dt.timedelta(days=day)
        return dt.datetime.combine(date, dt.time(hour, minute), tzinfo=ZoneInfo(clinic.timezone))

    def fault_site(self, source: str, clinic_index: int, day: int, batch_id: str, file: str | None) -> FaultSite:
        """The fault injector of one batch, with a random stream of its own (faults never shift other data)."""
        rng = rng_for(self.options.seed, TAG_FAULTS, SOURCE_CODES[source], clinic_index, day + 100_000)
        weights = self.config["faults"][source]
        return FaultSite(source, rng, self.options.faults, weights, batch_id, file, self.fault_log)

    def emit_day(self, day: int) -> int:
        self._build_population(day)
        for old in [d for d in self._session_cache if d < day - LOOKBACK_DAYS]:
            del self._session_cache[old]
        today = self.sessions_on(day)
        by_clinic: dict[int, list[Session]] = defaultdict(list)
        for s in today:
            by_clinic[s.patient.clinic.index].append(s)
        stamp = (self.start + dt.timedelta(days=day)).strftime("%Y%m%d")
        batches = 0
        for clinic in self.clinics:
            sessions = by_clinic.get(clinic.index, [])
            batches += self._emit_monitor(clinic, day, stamp, sessions)
            batches += self._emit_epro(clinic, day, stamp, sessions)
            batches += self._emit_redcap(clinic, day, stamp, sessions)
        self._emit_ehr(day, stamp, today)
        for s in today:
            self.truth.add_session(s, self.config["safety_thresholds"])
        self.truth.last_day = day
        return batches + 1

    def _publish_files(self, batch: FileBatch) -> int:
        """Publish a clinic-day file batch; batch-level faults (truncation, encoding, re-delivery) happen here."""
        clinic, day, rel, data = batch.clinic, batch.day, batch.rel, batch.data
        manifest = {
            "clinic_id": clinic.clinic_id,
            "service_date": (self.start + dt.timedelta(days=day)).isoformat(),
            "records": batch.records,
            "format": batch.fmt,
            "announced_at": self.local_time(clinic, day, 23, 30).astimezone(dt.UTC).isoformat(),
        }
        site = self.fault_site("batch", clinic.index, day * 4 + SOURCE_CODES[batch.source], batch.batch_id, rel)
        kind = site.draw()
        delivered = None
        if kind == "undecodable_file":
            data = data.decode("utf-8", errors="replace").encode("utf-16")
        elif kind == "truncated_file":
            delivered = {rel: data[: int(len(data) * site.rng.uniform(0.4, 0.9))]}
        if kind is not None:
            site.record(kind)
        self._publish_and_record(batch.source, batch.batch_id, {rel: data}, manifest, delivered=delivered)
        if kind == "duplicate_batch":  # the sender re-delivers the same file under a new batch id
            resend = f"{batch.batch_id}-resend1"
            self._publish_and_record(
                batch.source,
                resend,
                {rel.replace(batch.batch_id, resend): data},
                manifest,
                duplicate_of=batch.batch_id,
            )
            return 2
        return 1

    def _publish_and_record(
        self,
        source: str,
        batch_id: str,
        files: dict[str, bytes],
        manifest: dict[str, Any],
        *,
        delivered: dict[str, bytes] | None = None,
        duplicate_of: str | None = None,
    ) -> None:
        record = self.landing.publish(source, batch_id, files, manifest, delivered)
        entry = {
            "batch_id": batch_id,
            "source": source,
            "clinic_id": manifest.get("clinic_id"),
            "service_date": manifest["service_date"],
            "records": manifest.get("records", sum(manifest.get("tables", {}).values())),
            "files": list(files),
            "marker": record["marker"],
        }
        if "tables" in manifest:
            entry["tables"] = manifest["tables"]
        if duplicate_of:
            entry["duplicate_of"] = duplicate_of
        self.truth.batches.append(entry)

    def _emit_monitor(self, clinic: Clinic, day: int, stamp: str, sessions: list[Session]) -> int:
        if not sessions:
            return 0
        batch_id = f"monitor-{clinic.clinic_id}-{stamp}"
        rel = f"monitor/{clinic.clinic_id}/{batch_id}.hl7"
        messages = hl7_monitor.clinic_day_messages(clinic, sessions, stamp)
        site = self.fault_site("monitor", clinic.index, day, batch_id, rel)
        order, latin1 = faults.inject_monitor_faults(site, messages)
        # Bytes message by message: a faulty Latin-1 message sits among UTF-8 ones, as it would in the wild.
        created = self.local_time(clinic, day, 23, 0)
        head, tail = hl7_monitor.batch_envelope(clinic, batch_id, created, len(order))
        body = b"".join(m.text().encode("latin-1" if m.control_id in latin1 else "utf-8") for m in order)
        data = head.encode() + body + tail.encode()
        return self._publish_files(
            FileBatch("monitor", batch_id, clinic, day, rel, data, len(order), "hl7v2.6-oru-r01-batch")
        )

    def _emit_epro(self, clinic: Clinic, day: int, stamp: str, sessions: list[Session]) -> int:
        answered = sorted(
            (
                (q.authored_at, s, q)
                for s in sessions
                for q in s.questionnaires
                if q.instrument in epro.QUESTIONNAIRE_URLS
            ),
            key=lambda x: (x[0], x[2].questionnaire_id),
        )
        if not answered:
            return 0
        batch_id = f"epro-{clinic.clinic_id}-{stamp}"
        rel = f"epro/{clinic.clinic_id}/{batch_id}.ndjson"
        site = self.fault_site("epro", clinic.index, day, batch_id, rel)
        lines = []
        for line_no, (_, session, q) in enumerate(answered, start=1):
            resource = epro.questionnaire_response(session, q)
            bad_bytes = faults.inject_epro_fault(site, resource, line_no)
            text = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
            if bad_bytes:  # a free-text label typed on a Latin-1 device
                lines.append(text.replace('"text":"', '"text":"Préférence: ', 1).encode("latin-1"))
            else:
                lines.append(text.encode("utf-8"))
        data = b"\n".join(lines) + b"\n"
        return self._publish_files(FileBatch("epro", batch_id, clinic, day, rel, data, len(lines), "fhir-r4-ndjson"))

    def _emit_redcap(self, clinic: Clinic, day: int, stamp: str, sessions: list[Session]) -> int:
        rated = sorted(
            ((q.authored_at, s, q) for s in sessions for q in s.questionnaires if q.instrument in ("cadss", "madrs")),
            key=lambda x: (x[0], x[1].session_id, x[2].timepoint),
        )
        if not rated:
            return 0
        batch_id = f"redcap-{clinic.clinic_id}-{stamp}"
        rel = f"redcap/{clinic.clinic_id}/{batch_id}.csv"
        site = self.fault_site("redcap", clinic.index, day, batch_id, rel)
        rows = []
        for line_no, (_, session, q) in enumerate(rated, start=2):  # line 1 is the header
            row = epro.redcap_row(session, q)
            faults.inject_redcap_fault(site, row, line_no)
            rows.append(row)
        data = epro.redcap_csv_text(rows).encode("utf-8")
        return self._publish_files(FileBatch("redcap", batch_id, clinic, day, rel, data, len(rows), "redcap-csv"))

    def _emit_ehr(self, day: int, stamp: str, today: list[Session]) -> None:
        batch_id = f"ehr-{stamp}"
        site = self.fault_site("ehr", 0, day, batch_id, None)
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in ehr.TABLES}
        if day == 0:
            opened = self.local_time(self.clinics[0], 0, 6).astimezone(dt.UTC)
            rows["clinics"] = [ehr.clinic_row(c, opened) for c in self.clinics]
        for patient in sorted(self._patients_by_emit_day.get(day, []), key=lambda p: (p.clinic.index, p.number)):
            written = self.local_time(patient.clinic, day, 7, 30).astimezone(dt.UTC)
            enrolled_on = self.start + dt.timedelta(days=patient.enrolled_day)
            row = ehr.patient_row(patient, enrolled_on, written)
            faults.inject_ehr_fault(site, "patients", row)
            rows["patients"].append(row)
            rows["concomitant_medications"] += ehr.medication_rows(patient, enrolled_on, written)
            self.truth.patients += 1
        for session in today:
            row = ehr.session_row(session, ehr.utc(session.discharged_at) + dt.timedelta(minutes=10))
            faults.inject_ehr_fault(site, "infusion_sessions", row)
            rows["infusion_sessions"].append(row)
        faulted = {f["location"]["key"] for f in self.fault_log.faults if f["source"] == "ehr"}
        for back in range(min(day, LOOKBACK_DAYS) + 1):
            for session in self.sessions_on(day - back):
                for event in session.adverse_events:
                    row = self._adverse_event_row(day, back, session, event, faulted)
                    if row is not None:
                        if back == event.entry_delay_days:
                            faults.inject_ehr_fault(site, "adverse_events", row)
                        rows["adverse_events"].append(row)
        with self.engine.begin() as conn:
            for name, table_rows in rows.items():
                ehr.upsert_rows(conn, name, table_rows)
        counts = {name: len(r) for name, r in rows.items()}
        written_all = [row["updated_at"] for table_rows in rows.values() for row in table_rows]
        manifest = {
            "service_date": (self.start + dt.timedelta(days=day)).isoformat(),
            "tables": counts,
            "updated_at_max": max(written_all).isoformat() if written_all else None,
        }
        self._publish_and_record("ehr", batch_id, {}, manifest)

    def _adverse_event_row(
        self, day: int, back: int, session: Session, event: AdverseEvent, faulted: set[str]
    ) -> dict[str, Any] | None:
        """The EHR row an adverse event gets `back` days after its session: first entry, late correction or none."""
        clinic = session.patient.clinic
        version = self.config["adverse_events"]["ctcae_version"]
        if back == event.entry_delay_days:
            if back == 0:
                written = ehr.utc(session.discharged_at) + dt.timedelta(minutes=15)
            else:
                written = self.local_time(clinic, day, 9).astimezone(dt.UTC)
            return ehr.adverse_event_row(session, event, event.outcome, written, version)
        correction_back = None
        if event.correction_delay_days is not None:
            correction_back = max(event.correction_delay_days, event.entry_delay_days + 1)
        if back == correction_back and event.ae_id not in faulted and event.corrected_outcome:
            written = self.local_time(clinic, day, 10).astimezone(dt.UTC)
            return ehr.adverse_event_row(session, event, event.corrected_outcome, written, version)
        return None

    # --- run ---------------------------------------------------------------------------------------------

    def run(self) -> SimulationSummary:
        first = day = self._resume_day()
        sessions_before, batches = len(self.truth.sessions), 0
        while self.options.days is None or day < first + self.options.days:
            batches += self.emit_day(day)
            day += 1
            if self.options.continuous:
                self._save_state(day)
                log.info("simulated day %s (%s batches so far)", day - 1, batches)
                time.sleep(self.options.interval_s)
        self._save_state(day)
        return SimulationSummary(
            first,
            day - 1,
            len(self.truth.sessions) - sessions_before,
            batches,
            len(self.fault_log.faults),
            self.options.truth_path,
        )


def simulate(options: SimulationOptions) -> SimulationSummary:
    return NetworkSimulator(options).run()
