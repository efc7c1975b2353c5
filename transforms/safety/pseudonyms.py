"""Pseudonymous patient tokens for person-level listings (serious events, suicidality flags).

HIPAA 164.514(c) and DOMAIN.md: a re-identification code must not be derived from the person's data, so a
token is random (`secrets`), never a hash of the MRN or patient id. The lookup (patient_id -> token) lives in
the lake's access-controlled state zone (`state/pseudonyms.parquet`), apart from every mart; a token once
given is reused on every rerun, so listings are stable and reruns deterministic.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

import pandas as pd

# No 0/O, 1/I/L: tokens are read aloud in safety calls.
TOKEN_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
TOKEN_LENGTH = 8
LOOKUP_COLUMNS = ["patient_id", "patient_token"]


def random_token() -> str:
    return "P-" + "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def assign_tokens(
    lookup: pd.DataFrame, patient_ids: Iterable[str], new_token: Callable[[], str] = random_token
) -> tuple[pd.DataFrame, int]:
    """The lookup extended with a fresh token for every patient not in it yet; returns (lookup, tokens added)."""
    existing = lookup[LOOKUP_COLUMNS] if not lookup.empty else pd.DataFrame(columns=LOOKUP_COLUMNS)
    known = set(existing["patient_id"])
    used = set(existing["patient_token"])
    missing = sorted({str(p) for p in patient_ids if pd.notna(p)} - known)
    rows = []
    for patient_id in missing:
        token = new_token()
        while token in used:  # 31^8 tokens: a clash is rare, but a shared token would merge two people
            token = new_token()
        used.add(token)
        rows.append((patient_id, token))
    added = pd.DataFrame(rows, columns=LOOKUP_COLUMNS)
    combined = pd.concat([existing, added], ignore_index=True) if rows else existing.copy()
    combined = combined.astype({"patient_id": str, "patient_token": str})
    return combined.sort_values("patient_id", kind="stable").reset_index(drop=True), len(rows)
