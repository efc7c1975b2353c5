"""A local Airflow for the clinic pipeline: start `airflow standalone`, wait for it, watch the DAG runs, stop it.

Used by `make demo` / `make up` / `make down` (`clinic_pipeline.demo`) and by the live tests. Airflow runs on its
embedded default: SQLite metadata DB in AIRFLOW_HOME, LocalExecutor with a small `parallelism`, and the four
components `airflow standalone` starts (scheduler, dag-processor, triggerer, api-server). Everything is in one
process group (a new session), so stopping it is one signal to the group; the group id is kept in
`AIRFLOW_HOME/standalone.pid` for `make down`.

The DAG runs are read from the metadata DB (read-only SQLite queries), which needs no token and no running
api-server. `wait_for_pipeline` returns when the pipeline is idle: every announced batch is in the lake's ledger,
no DAG run is queued or running, no asset event waits for a run, and the latest run of each DAG succeeded. It
raises `PipelineFailed` (with the task's log tail) as soon as a run fails.

    python -m clinic_pipeline.standalone status|stop [--home airflow-home]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INGEST_DAG_IDS = ("ingest_ehr", "ingest_monitor_vitals", "ingest_epro_questionnaires")
DOWNSTREAM_DAG_IDS = ("safety_review", "fhir_export")
DAG_IDS = (*INGEST_DAG_IDS, *DOWNSTREAM_DAG_IDS)
SOURCES = ("ehr", "monitor", "epro", "redcap")
NEVER_CRON = "0 0 29 2 *"  # 29 February: no time-based sweep between the DAGs' start_date and now
PID_FILE = "standalone.pid"
LOG_FILE = "standalone.log"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
ACTIVE = ("queued", "running")
TI_PROBLEMS = ("failed", "up_for_retry", "upstream_failed")


class AirflowNotReady(RuntimeError):
    """Airflow did not come up (the message holds the reason and the standalone log tail)."""


class PipelineFailed(RuntimeError):
    """A DAG run failed, or the pipeline did not become idle in time (the message says which and why)."""


# --- ports and processes ---------------------------------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_port(preferred: int | None) -> tuple[int, str | None]:
    """The preferred port when it is free, else a free one (and a note saying so)."""
    if preferred is None:
        return free_port(), None
    if port_free(preferred) and port_free(preferred, "0.0.0.0"):
        return preferred, None
    port = free_port()
    return port, f"port {preferred} is taken; using {port} (set CLINIC_AIRFLOW_PORT to choose)"


INSTANCE_VAR = "CLINIC_AIRFLOW_INSTANCE"  # in the environment of the processes the standalone starts


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    pgid: int
    marked: bool  # its environment holds this standalone's instance id (retitled processes lose it)


def _processes(marker: bytes | None) -> list[_Proc]:
    """Live processes (zombies do not count), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes() if marker else b""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            marked = marker is not None and marker in environ.split(b"\0")
            found.append(_Proc(int(entry.name), int(fields[1]), int(fields[2]), marked))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    return [p.pid for p in _processes(None) if p.pgid == pgid]


def instance_processes(instance: str) -> dict[int, int]:
    """pid -> process group of the live processes whose environment names the standalone `instance`."""
    marker = f"{INSTANCE_VAR}={instance}".encode()
    return {p.pid: p.pgid for p in _processes(marker) if p.marked and p.pid != os.getpid()}


def stop_processes(
    leader: int | None, instance: str | None, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> list[int]:
    """Stop the standalone `leader` and everything it started: SIGTERM to its process group and to the group
    of every descendant (LocalExecutor runs each task under a supervisor in a session of its own, which a
    signal to the standalone's group alone would leave running), wait until all are gone, then SIGKILL.
    Descendants are found before any signal (an orphan loses its parent link); processes whose environment
    names the instance are included too (`make down` after the leader died). Returns what is left (nothing)."""
    marker = f"{INSTANCE_VAR}={instance}".encode() if instance else None
    groups = {leader} if leader else set()
    tree = {leader} if leader else set()
    own_group = os.getpgrp()

    def remaining() -> list[_Proc]:
        if proc is not None:
            proc.poll()  # reap the leader, or it stays a zombie
        procs = [p for p in _processes(marker) if p.pid != os.getpid()]
        children: dict[int, list[_Proc]] = {}
        for p in procs:
            children.setdefault(p.ppid, []).append(p)
        todo = [p for p in procs if p.pid in tree or p.pgid in groups or p.marked]
        while todo:
            p = todo.pop()
            tree.add(p.pid)
            groups.add(p.pgid)
            todo += [c for c in children.get(p.pid, []) if c.pid not in tree]
        return [p for p in procs if p.pid in tree or p.pgid in groups]

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not remaining():
            break
        for group in sorted(g for g in groups if g > 1 and g != own_group):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and remaining():
            time.sleep(0.5)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return [p.pid for p in remaining()]


def _is_standalone(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"standalone" in cmdline and any(b"airflow" in part for part in cmdline)


def _pid_file(home: Path) -> tuple[int, str | None] | None:
    try:
        parts = (home / PID_FILE).read_text().split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def running_pid(home: Path) -> int | None:
    """The process group of a standalone started from this AIRFLOW_HOME that is still running, if any."""
    recorded = _pid_file(home)
    return recorded[0] if recorded and _is_standalone(recorded[0]) else None


def stop_running(home: Path) -> bool:
    """Stop the standalone recorded in `home`'s pid file and what it started (`make down`). False when it was
    not running (tasks it left behind are stopped anyway)."""
    recorded = _pid_file(home)
    if recorded is None:
        return False
    pid, instance = recorded
    was_running = _is_standalone(pid)
    stop_processes(pid if was_running else None, instance)
    (home / PID_FILE).unlink(missing_ok=True)
    return was_running


# --- the local Airflow -----------------------------------------------------------------------------------------


@dataclass
class LocalAirflow:
    """`airflow standalone` for the clinic DAGs, with its environment.

    home: AIRFLOW_HOME (SQLite DB, logs, admin password); data: CLINIC_DATA (landing/ and lake/);
    extra_env: anything else for every component (e.g. CLINIC_EVENT_BUS=redis and its connection)."""

    home: Path
    data: Path
    port: int
    host: str = "127.0.0.1"
    parallelism: int = 4
    sweep_cron: str = NEVER_CRON
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE

    def admin_password(self) -> str | None:
        try:
            return json.loads(self.password_file.read_text()).get("admin")
        except (OSError, ValueError, AttributeError):
            return None

    def env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)  # standalone starts its components as `airflow` from PATH
        return {
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home.resolve()),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db.resolve()}",
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{self.port}/execution/",
            # serve-logs of the workers and the triggerer: free ports, so two local Airflows do not collide
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ASSET_TRIGGERED_DAGRUN_CHECK_INTERVAL": "2",
            "CLINIC_DATA": str(self.data.resolve()),
            "CLINIC_LANDING": str((self.data / "landing").resolve()),
            "CLINIC_LAKE": str((self.data / "lake").resolve()),
            "CLINIC_EVENT_BUS": "files",
            "CLINIC_SWEEP_CRON": self.sweep_cron,
            "GX_ANALYTICS_ENABLED": "False",
            INSTANCE_VAR: self.instance,
            **self.extra_env,
        }

    def start(self) -> None:
        """Start `airflow standalone` in a session of its own (its output goes to AIRFLOW_HOME/standalone.log)."""
        if running_pid(self.home) is not None:
            raise AirflowNotReady(f"an Airflow started from {self.home} is still running: stop it first (make down)")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.data / "landing" / "_ready").mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"],
                cwd=REPO,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.home / PID_FILE).write_text(f"{self.proc.pid} {self.instance}\n")

    def stop(self) -> list[int]:
        """Stop every process the standalone started (scheduler, executor workers, tasks, triggerer, ...);
        returns the pids still alive afterwards (none)."""
        left = stop_processes(self.proc.pid if self.proc else running_pid(self.home), self.instance, proc=self.proc)
        (self.home / PID_FILE).unlink(missing_ok=True)
        return left

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(
        self,
        dag_ids: Iterable[str] = DAG_IDS,
        watchers: int = len(SOURCES),
        timeout: float = 300.0,
        say: Callable[[str], None] = print,
    ) -> float:
        """Wait until the DAGs are registered and unpaused, the triggerer runs the watchers' triggers and the
        api-server answers. Returns the seconds it took."""
        started = time.monotonic()
        dag_ids = set(dag_ids)
        last = ""
        while True:
            if not self.alive():
                raise AirflowNotReady(f"airflow standalone exited; log tail:\n{self.log_tail()}")
            registered = _registered_dags(self.db) & dag_ids
            triggers = _running_watcher_triggers(self.db)
            api = _api_healthy(self.url)
            status = (
                f"DAGs registered {len(registered)}/{len(dag_ids)}, watcher triggers running "
                f"{triggers}/{watchers}, api-server {'up' if api else 'starting'}"
            )
            if status != last:
                say(f"  [{_clock(time.monotonic() - started)}] {status}")
                last = status
            if registered == dag_ids and triggers >= watchers and api:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AirflowNotReady(
                    f"Airflow not ready after {timeout:.0f} s ({status}); log tail of {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(2)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:2d}m{secs:02d}s"


def _api_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


# --- the metadata DB (read-only) -------------------------------------------------------------------------------


def query_db(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.Error:  # not migrated yet, or locked for longer than the timeout: ask again next time
        return []


def _registered_dags(db: Path) -> set[str]:
    return {r[0] for r in query_db(db, "select dag_id from dag where is_paused = 0 and is_stale = 0")}


def _running_watcher_triggers(db: Path) -> int:
    """Asset-watcher triggers assigned to a triggerer job that is running."""
    rows = query_db(
        db,
        "select count(distinct t.id) from trigger t join asset_watcher w on w.trigger_id = t.id "
        "join job j on j.id = t.triggerer_id where j.state = 'running'",
    )
    return rows[0][0] if rows else 0


def parse_time(value: str | None) -> dt.datetime | None:
    """Airflow stores UTC times in SQLite as naive ISO strings."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    run_type: str
    state: str
    queued_at: dt.datetime | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None

    @property
    def seconds(self) -> float | None:
        if self.start_date and self.end_date:
            return (self.end_date - self.start_date).total_seconds()
        return None


@dataclass(frozen=True)
class TaskTry:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None


def dag_runs(db: Path) -> list[DagRun]:
    rows = query_db(
        db,
        "select dag_id, run_id, run_type, state, queued_at, start_date, end_date from dag_run order by id",
    )
    return [DagRun(r[0], r[1], r[2], r[3], *(parse_time(v) for v in r[4:])) for r in rows]


def task_tries(db: Path) -> list[TaskTry]:
    rows = query_db(
        db,
        "select dag_id, run_id, task_id, map_index, try_number, state, start_date, end_date from task_instance",
    )
    return [TaskTry(*r[:6], parse_time(r[6]), parse_time(r[7])) for r in rows]


def queued_asset_runs(db: Path) -> set[str]:
    """DAGs with asset events waiting to become a run (the scheduler's asset_dag_run_queue)."""
    return {r[0] for r in query_db(db, "select distinct target_dag_id from asset_dag_run_queue")}


def task_log_file(home: Path, ti: TaskTry) -> Path | None:
    folder = home / "logs" / f"dag_id={ti.dag_id}" / f"run_id={ti.run_id}" / f"task_id={ti.task_id}"
    if ti.map_index >= 0:
        folder = folder / f"map_index={ti.map_index}"
    logs = sorted(folder.glob("attempt=*.log"), key=lambda p: int(p.stem.split("=")[1]))
    if not logs:
        return None
    wanted = folder / f"attempt={ti.try_number}.log"
    return wanted if wanted.exists() else logs[-1]


def render_log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a task log (Airflow 3 writes JSON lines) as `time level event` text, with tracebacks."""
    out: list[str] = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            out.append(raw)
            continue
        if not isinstance(record, dict):
            out.append(raw)
            continue
        stamp = str(record.get("timestamp", ""))[11:19]
        out.append(f"{stamp} {str(record.get('level', '')).upper():<7} {record.get('event', '')}")
        for detail in record.get("error_detail") or []:
            if not isinstance(detail, dict):
                continue
            for frame in (detail.get("frames") or [])[-4:]:
                out.append(f"    {frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}")
            out.append(f"    {detail.get('exc_type')}: {detail.get('exc_value')}")
    return "\n".join(line for chunk in out[-lines:] for line in chunk.splitlines())


# --- the landing zone and the ledger ---------------------------------------------------------------------------


def announced_batches(landing: Path) -> dict[tuple[str, str], float]:
    """(source, batch_id) -> the marker's mtime (when the clinic system announced the batch)."""
    found = {}
    for source in SOURCES:
        for marker in (landing / "_ready" / source).glob("*.json"):
            found[(source, marker.stem)] = marker.stat().st_mtime
    return found


def ledger_times(lake: Path) -> dict[tuple[str, str], float]:
    """(source, batch_id) -> when the pipeline recorded the batch as processed (the ledger file's mtime)."""
    found = {}
    ledger = lake / "state" / "ledger"
    for source in SOURCES:
        for entry in (ledger / source).glob("*.json"):
            found[(source, entry.stem)] = entry.stat().st_mtime
    return found


# --- waiting for the pipeline ----------------------------------------------------------------------------------


@dataclass
class PipelineState:
    runs: list[DagRun]
    tries: list[TaskTry]
    adrq: set[str]
    announced: int
    processed: int

    def runs_of(self, dag_id: str) -> list[DagRun]:
        return [r for r in self.runs if r.dag_id == dag_id]

    def failed_runs(self) -> list[DagRun]:
        return [r for r in self.runs if r.state == "failed"]

    def idle(self, dag_ids: Iterable[str]) -> bool:
        for dag_id in dag_ids:
            runs = self.runs_of(dag_id)
            if not runs or runs[-1].state != "success" or any(r.state in ACTIVE for r in runs):
                return False
        return not self.adrq and self.processed >= self.announced > 0

    def line(self, dag_ids: Iterable[str]) -> str:
        parts = []
        for dag_id in dag_ids:
            runs = self.runs_of(dag_id)
            counts = {s: sum(r.state == s for r in runs) for s in ("queued", "running", "success", "failed")}
            text = ", ".join(f"{n} {'done' if s == 'success' else s}" for s, n in counts.items() if n)
            if dag_id in self.adrq:
                text = f"{text}, events waiting" if text else "events waiting"
            parts.append(f"{dag_id}: {text or '-'}")
        return " | ".join(parts) + f" | batches ingested {self.processed}/{self.announced}"


def pipeline_state(home: Path, data: Path) -> PipelineState:
    db = home / "airflow.db"
    announced = announced_batches(data / "landing")
    processed = ledger_times(data / "lake")
    return PipelineState(
        dag_runs(db), task_tries(db), queued_asset_runs(db), len(announced), len(set(announced) & set(processed))
    )


def failure_report(home: Path, state: PipelineState, ti: TaskTry, lines: int = 25) -> str:
    log = task_log_file(home, ti)
    head = f"DAG {ti.dag_id}, run {ti.run_id}, task {ti.task_id} (try {ti.try_number}): {ti.state}"
    if log is None:
        return f"{head}\n  (no task log under {home / 'logs'})"
    tail = render_log_tail(log, lines)
    return f"{head}\n  log: {log}\n" + "\n".join(f"  | {line}" for line in tail.splitlines())


def wait_for_pipeline(
    airflow: LocalAirflow,
    dag_ids: Iterable[str] = DAG_IDS,
    timeout: float = 900.0,
    settle: float = 12.0,
    every: float = 5.0,
    producer_done: Callable[[], bool] = lambda: True,
    say: Callable[[str], None] = print,
) -> PipelineState:
    """Poll until the pipeline is idle for `settle` seconds (see the module doc); one progress line per change
    (and at least every 30 s). Raises PipelineFailed at the first failed run (with the task log tail) or at the
    timeout; a task waiting for a retry is reported once, with its log tail, and waited for."""
    dag_ids = tuple(dag_ids)
    started = time.monotonic()
    idle_since: float | None = None
    last_line, last_print = "", 0.0
    reported: set[tuple] = set()
    while True:
        if not airflow.alive():
            raise PipelineFailed(f"airflow standalone exited; log tail:\n{airflow.log_tail()}")
        state = pipeline_state(airflow.home, airflow.data)
        now = time.monotonic()
        line = state.line(dag_ids)
        if line != last_line or now - last_print >= 30:
            say(f"  [{_clock(now - started)}] {line}")
            last_line, last_print = line, now
        for ti in state.tries:
            key = (ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            if ti.state == "up_for_retry" and key not in reported:
                reported.add(key)
                say(f"  WARNING a task failed and will be retried:\n{failure_report(airflow.home, state, ti)}")
        failed = state.failed_runs()
        if failed:
            raise PipelineFailed(_failed_runs_report(airflow.home, state, failed))
        if producer_done() and state.idle(dag_ids):
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= settle:
                return state
        else:
            idle_since = None
        if now - started > timeout:
            raise PipelineFailed(
                f"the pipeline was not idle after {timeout:.0f} s: {line}\n"
                f"(announced batches not in the ledger: {state.announced - state.processed}; "
                f"scheduler log: {airflow.log_path})\n{airflow.log_tail(2000)}"
            )
        time.sleep(every)


def _failed_runs_report(home: Path, state: PipelineState, failed: list[DagRun]) -> str:
    parts = []
    for run in failed:
        tis = [t for t in state.tries if t.dag_id == run.dag_id and t.run_id == run.run_id and t.state in TI_PROBLEMS]
        first = [t for t in tis if t.state != "upstream_failed"] or tis
        parts.append(f"DAG run failed: {run.dag_id} {run.run_id}")
        parts += [failure_report(home, state, t) for t in first]
        if not first:
            parts.append("  (no failed task: see the scheduler's output in standalone.log)")
    return "\n".join(parts)


# --- event -> dashboard latency ---------------------------------------------------------------------------------


def dashboard_publishes(tries: list[TaskTry]) -> list[tuple[dt.datetime, dt.datetime]]:
    """(marts build started, dashboard published) of each successful safety_review run, in order."""
    by_run: dict[str, dict[str, TaskTry]] = {}
    for t in tries:
        if t.dag_id == "safety_review" and t.state == "success":
            by_run.setdefault(t.run_id, {})[t.task_id] = t
    pairs = []
    for tasks in by_run.values():
        marts, publish = tasks.get("build_marts"), tasks.get("publish_dashboard")
        if marts and publish and marts.start_date and publish.end_date:
            pairs.append((marts.start_date, publish.end_date))
    return sorted(pairs, key=lambda p: p[1])


def event_to_dashboard(
    events: dict[tuple[str, str], float], processed: dict[tuple[str, str], float], tries: list[TaskTry]
) -> list[dict[str, Any]]:
    """Per batch: its event time, when it was ingested (ledger) and the first dashboard publish whose marts were
    built after that (so it shows the batch), and the seconds from the event to that publish."""
    publishes = dashboard_publishes(tries)
    out = []
    for (source, batch_id), event_at in sorted(events.items(), key=lambda kv: kv[1]):
        ingested = processed.get((source, batch_id))
        shown = None
        if ingested is not None:
            ingested_at = dt.datetime.fromtimestamp(ingested, dt.UTC)
            shown = next((end for start, end in publishes if start >= ingested_at), None)
        out.append(
            {
                "source": source,
                "batch_id": batch_id,
                "event_at": dt.datetime.fromtimestamp(event_at, dt.UTC).isoformat(),
                "ingested_after_s": None if ingested is None else round(ingested - event_at, 1),
                "dashboard_at": None if shown is None else shown.isoformat(),
                "event_to_dashboard_s": None if shown is None else round(shown.timestamp() - event_at, 1),
            }
        )
    return out


def latency_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = sorted(r["event_to_dashboard_s"] for r in rows if r["event_to_dashboard_s"] is not None)
    if not values:
        return {"batches": len(rows), "on_dashboard": 0}

    def pct(p: float) -> float:
        return values[min(len(values) - 1, round(p * (len(values) - 1)))]

    return {
        "batches": len(rows),
        "on_dashboard": len(values),
        "min_s": values[0],
        "median_s": pct(0.5),
        "p95_s": pct(0.95),
        "max_s": values[-1],
    }


# --- command line (make down) ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic_pipeline.standalone", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("status", "stop"))
    parser.add_argument("--home", type=Path, default=Path("airflow-home"), help="AIRFLOW_HOME (default airflow-home)")
    args = parser.parse_args(argv)
    pid = running_pid(args.home)
    if args.action == "status":
        print(f"Airflow from {args.home}: " + (f"running (process group {pid})" if pid else "not running"))
        return 0
    if pid is None:
        print(f"no Airflow started from {args.home} is running")
        stop_running(args.home)
        return 0
    print(f"stopping Airflow (process group {pid}, AIRFLOW_HOME {args.home})...")
    stop_running(args.home)
    print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
