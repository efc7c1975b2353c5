"""Delivery of the FHIR export to a FHIR server: transaction Bundles through a durable outbox.

1. **Plan**: compare the export with what this server already acknowledged (per resource: sha256 of its NDJSON
   line) and write one transaction Bundle per patient (split above `max_entries`) into
   `fhir/outbox/<target>/pending/`. Each Bundle carries what changed plus everything it references
   (Patient, Organization, Encounter, ...), so every reference resolves inside the transaction.
2. **Send**: POST each pending Bundle; retry 429, 5xx, timeouts and broken connections with exponential backoff
   (honouring Retry-After); check every entry's outcome; move the Bundle to `sent/` only when all entries
   succeeded, to `failed/` (with the server's answer) when the server rejected it for good.

Nothing is lost when the server is down: pending Bundles stay on disk and the next run sends them (re-planned
from the newest export). Nothing is duplicated when it comes back, even when a response was lost after the
server committed: every entry is a conditional update on the resource's business identifier
(`PUT Observation?identifier=system|value`, search values URL-encoded) or, for the R4 types without an
`identifier` search parameter (AdverseEvent, Provenance), an update of its deterministic id.
`sent/` is the journal of acknowledged content; planning folds it into `state/fhir_delivery/<target>.parquet`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from clinic_pipeline.fhir.export import EXPORT_DIR
from clinic_pipeline.lake import Lake
from fhir_mappings.network import RESOURCE_TYPES
from fhir_mappings.validation import references

log = logging.getLogger("clinic_pipeline.fhir.delivery")

# R4 search parameters: these types are searchable by identifier, the others are addressed by id.
BY_IDENTIFIER = frozenset(
    ["Organization", "Patient", "Encounter", "MedicationAdministration", "Observation", "QuestionnaireResponse"]
)
RETRYABLE_STATUS = frozenset([408, 425, 429, 500, 502, 503, 504])


@dataclass(frozen=True)
class FhirTarget:
    """A FHIR server to deliver to (from an Airflow Connection or `--fhir-url`)."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    max_attempts: int = 6
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    @property
    def key(self) -> str:
        """A folder name for this server's outbox and ledger."""
        readable = re.sub(r"[^A-Za-z0-9]+", "-", self.base_url.split("://", 1)[-1]).strip("-")[:60]
        return f"{readable}-{hashlib.sha256(self.base_url.encode()).hexdigest()[:8]}"


@dataclass
class DeliveryReport:
    planned: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    entries: int = 0
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool, body: bytes = b"", retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.body = body
        self.retry_after = retry_after


# --- planning -----------------------------------------------------------------------------------------------


@dataclass
class _Line:
    rtype: str
    offset: int
    length: int
    sha256: str
    owner: str  # Patient/<id>, or "" for resources of no patient (Organization)


def _index_export(lake: Lake) -> dict[str, _Line]:
    """Every exported resource: where its line is, its hash and the patient it belongs to."""
    index: dict[str, _Line] = {}
    for rtype in RESOURCE_TYPES:
        path = lake.path(*EXPORT_DIR, f"{rtype}.ndjson")
        if not path.exists():
            continue
        offset = 0
        with path.open("rb") as f:
            for line in f:
                resource = orjson.loads(line)
                ref = f"{rtype}/{resource['id']}"
                index[ref] = _Line(rtype, offset, len(line), hashlib.sha256(line).hexdigest(), _owner(resource, index))
                offset += len(line)
    return index


def _owner(resource: dict[str, Any], index: dict[str, _Line]) -> str:
    rtype = resource["resourceType"]
    if rtype == "Patient":
        return f"Patient/{resource['id']}"
    if rtype == "Provenance":  # written last: its targets are indexed already
        return next((index[t["reference"]].owner for t in resource["target"] if t["reference"] in index), "")
    subject = resource.get("subject", {}).get("reference", "")
    return subject if subject.startswith("Patient/") else ""


def _ledger(lake: Lake, target: FhirTarget) -> dict[str, str]:
    """What the server acknowledged (ref -> sha256), with the `sent/` journal folded in."""
    import pandas as pd

    path = lake.path("state", "fhir_delivery", f"{target.key}.parquet")
    ledger: dict[str, str] = {}
    if path.exists():
        frame = pd.read_parquet(str(path))
        ledger = dict(zip(frame["ref"], frame["sha256"], strict=True))
    sent = sorted(_outbox(lake, target, "sent").glob("*.json"))
    if not sent:
        return ledger
    for bundle_file in sent:
        ledger.update(orjson.loads(bundle_file.read_bytes())["acknowledges"])
    frame = pd.DataFrame(sorted(ledger.items()), columns=["ref", "sha256"])
    lake.write_parquet(path, frame)
    for bundle_file in sent:  # folded into the ledger: the journal entries can go
        bundle_file.unlink()
    return ledger


def _outbox(lake: Lake, target: FhirTarget, state: str) -> Any:
    return lake.path("fhir", "outbox", target.key, state)


def plan_delivery(lake: Lake, target: FhirTarget, max_entries: int = 500) -> int:
    """Write the transaction Bundles that bring the server up to the export; returns how many are pending."""
    index = _index_export(lake)
    ledger = _ledger(lake, target)
    changed = [ref for ref, line in index.items() if ledger.get(ref) != line.sha256]
    by_owner: dict[str, list[str]] = defaultdict(list)
    for ref in changed:
        by_owner[index[ref].owner].append(ref)
    pending = _outbox(lake, target, "pending")
    pending.mkdir(parents=True, exist_ok=True)
    stale = {p.name for p in pending.glob("*.json")}
    written: set[str] = set()
    reader = _LineReader(lake)
    # Organizations first (patients point to them), then patients in a stable order.
    owners = sorted(by_owner, key=lambda owner: (owner != "", owner))
    for number, owner in enumerate(owners):
        refs = by_owner[owner]
        for part, chunk in enumerate(_chunks(refs, max_entries)):
            bundle, acknowledges = _bundle(chunk, index, reader)
            name = f"{number:07d}-{part:03d}.json"
            lake.write_bytes(pending / name, orjson.dumps({"bundle": bundle, "acknowledges": acknowledges}))
            written.add(name)
    reader.close()
    for name in stale - written:
        (pending / name).unlink()
    log.info("FHIR delivery plan for %s: %d changed resources in %d bundles", target.key, len(changed), len(written))
    return len(written)


def _chunks(refs: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(refs), size):
        yield refs[start : start + size]


class _LineReader:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.files: dict[str, Any] = {}

    def read(self, line: _Line) -> dict[str, Any]:
        if line.rtype not in self.files:
            self.files[line.rtype] = self.lake.path(*EXPORT_DIR, f"{line.rtype}.ndjson").open("rb")
        f = self.files[line.rtype]
        f.seek(line.offset)
        return orjson.loads(f.read(line.length))

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _bundle(refs: list[str], index: dict[str, _Line], reader: _LineReader) -> tuple[dict, dict[str, str]]:
    """A transaction Bundle with `refs` and, transitively, everything they reference."""
    resources: dict[str, dict] = {}
    queue = list(refs)
    while queue:
        ref = queue.pop()
        if ref in resources or ref not in index:
            continue
        resources[ref] = reader.read(index[ref])
        queue += [r for r in references(resources[ref]) if r not in resources]
    order = {t: i for i, t in enumerate(RESOURCE_TYPES)}
    entries = [_entry(resources[ref]) for ref in sorted(resources, key=lambda r: (order[r.split("/")[0]], r))]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return bundle, {ref: index[ref].sha256 for ref in resources}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    body = _to_urn(resource)
    if rtype in BY_IDENTIFIER:
        identifier = resource["identifier"]
        identifier = identifier[0] if isinstance(identifier, list) else identifier
        search = quote(f"{identifier['system']}|{identifier['value']}", safe="")
        body.pop("id")  # a conditional update's body id would have to match the server's own id
        request = {"method": "PUT", "url": f"{rtype}?identifier={search}"}
    else:
        request = {"method": "PUT", "url": f"{rtype}/{rid}"}
    return {"fullUrl": f"urn:uuid:{rid}", "resource": body, "request": request}


def _to_urn(node: Any) -> Any:
    """A copy with every `Type/<uuid>` reference rewritten to the bundle-local `urn:uuid:<uuid>`."""
    if isinstance(node, dict):
        return {
            k: (f"urn:uuid:{v.split('/', 1)[1]}" if k == "reference" and isinstance(v, str) else _to_urn(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_to_urn(v) for v in node]
    return node


# --- sending ------------------------------------------------------------------------------------------------


def send_outbox(lake: Lake, target: FhirTarget, client: Any = None) -> DeliveryReport:
    """POST every pending Bundle in order; stop early when the server stays unreachable (they stay pending)."""
    import httpx

    report = DeliveryReport()
    pending = sorted(_outbox(lake, target, "pending").glob("*.json"))
    report.planned = len(pending)
    own_client = client is None
    client = client or httpx.Client(timeout=target.timeout_s)
    try:
        for position, path in enumerate(pending):
            document = orjson.loads(path.read_bytes())
            try:
                outcomes = _post(client, target, document["bundle"])
            except DeliveryError as error:
                if error.retryable:
                    report.pending = len(pending) - position
                    report.errors.append(
                        f"{path.name}: server unavailable after {target.max_attempts} attempts: {error}"
                    )
                    break
                report.failed += 1
                report.errors.append(
                    f"{path.name}: rejected: {error} (the server's answer: failed/{path.stem}.response.json)"
                )
                failed = _outbox(lake, target, "failed")
                lake.write_bytes(failed / path.name, path.read_bytes())
                lake.write_bytes(failed / f"{path.stem}.response.json", error.body)
                path.unlink()
                continue
            report.sent += 1
            report.entries += len(outcomes)
            report.created += sum(1 for s in outcomes if s.startswith("201"))
            report.updated += sum(1 for s in outcomes if s.startswith("200"))
            sent = {"acknowledges": document["acknowledges"]}
            lake.write_bytes(_outbox(lake, target, "sent") / path.name, orjson.dumps(sent))
            path.unlink()
    finally:
        if own_client:
            client.close()
    log.info(
        "FHIR delivery to %s: %d sent (%d entries: %d created, %d updated), %d failed, %d pending",
        target.key,
        report.sent,
        report.entries,
        report.created,
        report.updated,
        report.failed,
        report.pending,
    )
    return report


def _post(client: Any, target: FhirTarget, bundle: dict[str, Any]) -> list[str]:
    """POST one transaction with retries; returns each entry's response status, all checked to be 2xx."""
    import httpx

    body = orjson.dumps(bundle)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **target.headers}
    last: DeliveryError | None = None
    for attempt in range(target.max_attempts):
        if attempt:
            time.sleep(_backoff(target, attempt, last))
        try:
            response = client.post(target.base_url.rstrip("/"), content=body, headers=headers)
        except (httpx.TimeoutException, httpx.TransportError) as error:  # refused, reset, timed out
            last = DeliveryError(f"{type(error).__name__}: {error}", retryable=True)
            continue
        if response.status_code in RETRYABLE_STATUS:
            retry_after = response.headers.get("Retry-After")
            last = DeliveryError(f"HTTP {response.status_code}", retryable=True, retry_after=retry_after)
            continue
        if response.status_code >= 300:
            # The server's OperationOutcome may echo identifiers: it goes to failed/, never to the log.
            raise DeliveryError(f"HTTP {response.status_code}", retryable=False, body=response.content)
        return _check_outcomes(bundle, response.content)
    assert last is not None
    raise last


def _backoff(target: FhirTarget, attempt: int, last: DeliveryError | None) -> float:
    if last is not None and last.retry_after is not None and last.retry_after.isdigit():
        return min(float(last.retry_after), target.backoff_max_s)
    return min(target.backoff_s * 2 ** (attempt - 1), target.backoff_max_s) * random.uniform(0.5, 1.0)


def _check_outcomes(bundle: dict[str, Any], content: bytes) -> list[str]:
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise DeliveryError(f"response is not JSON: {error}", retryable=True, body=content) from error
    entries = answer.get("entry", []) if isinstance(answer, dict) else []
    if answer.get("resourceType") != "Bundle" or answer.get("type") != "transaction-response":
        raise DeliveryError("response is not a transaction-response Bundle", retryable=False, body=content)
    if len(entries) != len(bundle["entry"]):
        raise DeliveryError(
            f"{len(entries)} outcomes for {len(bundle['entry'])} entries", retryable=False, body=content
        )
    statuses = [str(e.get("response", {}).get("status", "")) for e in entries]
    bad = [(i, s) for i, s in enumerate(statuses) if s[:1] != "2"]
    if bad:
        detail = ", ".join(f"{bundle['entry'][i]['request']['url'].split('?')[0]}: {s}" for i, s in bad[:5])
        raise DeliveryError(f"{len(bad)} entries failed ({detail})", retryable=False, body=content)
    return statuses


def deliver(lake: Lake, target: FhirTarget, max_entries: int = 500) -> DeliveryReport:
    plan_delivery(lake, target, max_entries)
    return send_outbox(lake, target)
