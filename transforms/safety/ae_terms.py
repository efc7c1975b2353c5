"""Adverse-event terms and their body systems, from the code map `code_maps/ae_body_systems.csv`.

Body systems are named after the CTCAE v5.0 system-organ-class headings (a public NCI document); no MedDRA
codes are shipped (DOMAIN.md: MedDRA needs a licence). A licensed partner can replace this file with a
SNOMED CT -> MedDRA PT/SOC mapping of the same shape. A term missing from the map is never dropped: it is
reported under UNMAPPED_BODY_SYSTEM so the gap shows on the dashboard.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

TERM_MAP = Path(__file__).with_name("code_maps") / "ae_body_systems.csv"
UNMAPPED_BODY_SYSTEM = "Unmapped term"
SUICIDALITY_UNKNOWN = "suicidality_unknown"
SUICIDAL_IDEATION = "suicidal_ideation"


@functools.cache
def load_term_map(path: Path = TERM_MAP) -> pd.DataFrame:
    """term -> term_label, body_system, ctcae_term, snomed_ct (indexed by term)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if table["term"].duplicated().any():
        raise ValueError(f"{path.name}: duplicate terms {sorted(table.loc[table['term'].duplicated(), 'term'])}")
    return table.set_index("term")


def body_system(terms: pd.Series) -> pd.Series:
    return terms.map(load_term_map()["body_system"]).fillna(UNMAPPED_BODY_SYSTEM).astype(str)


def term_label(terms: pd.Series) -> pd.Series:
    return terms.map(load_term_map()["term_label"]).fillna(terms).astype(str)
