"""Concomitant-medication risk strata per patient (DOMAIN.md: benzodiazepines, stimulants, MAOIs, opioids).

The strata are the REMS Patient Monitoring Form's medication questions (safety.md 1.3). Each patient gets one
flag per class and one mutually exclusive `conmed_stratum` (none, one class, or "multiple"), so that counts
summed over strata give the total. A stratum is a patient attribute: every medication staged for the patient
counts (the EHR records them at intake and has no stop date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RISK_CLASSES = ("benzodiazepine", "stimulant", "maoi", "opioid")
NONE, MULTIPLE = "none", "multiple"


def conmed_strata(patient_ids: pd.Series, medications: pd.DataFrame) -> pd.DataFrame:
    """Per patient (indexed by patient_id): `on_<class>` flags and `conmed_stratum`."""
    patients = pd.Index(pd.unique(patient_ids.dropna()), name="patient_id")
    flags = pd.DataFrame(index=patients)
    meds = (
        medications[["patient_id", "drug_class"]]
        if not medications.empty
        else pd.DataFrame(columns=["patient_id", "drug_class"])
    )
    for drug_class in RISK_CLASSES:
        takers = set(meds.loc[meds["drug_class"] == drug_class, "patient_id"])
        flags[f"on_{drug_class}"] = patients.isin(list(takers))
    on = flags[[f"on_{c}" for c in RISK_CLASSES]].to_numpy()
    count = on.sum(axis=1)
    single = np.array(RISK_CLASSES, dtype=object)[on.argmax(axis=1)] if len(flags) else np.array([], dtype=object)
    flags["conmed_stratum"] = np.select([count == 0, count == 1], [NONE, single], default=MULTIPLE)
    return flags
