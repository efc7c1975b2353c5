"""CTCAE hypertension grade of a session, from its post-dose readings, under CTCAE v5.0 and v6.0.

Readings alone cannot show what CTCAE also asks for (symptoms, medical intervention, organ damage), so this
is a reading-based grade: G4 and G5 need a clinician. The grade is always stored with its version.

v5.0 (safety.md 3.1 [V]): G1 SBP 120-139 or DBP 80-89; G2 SBP 140-159 or DBP 90-99; G3 SBP >= 160 or
DBP >= 100. The session's grade is its worst post-dose reading's. (v5's "recurrent or persistent >= 24 h"
for G2 cannot be judged within one session; like most infusion reports we grade the reading.)

v6.0 (safety.md 3.1 [V], DOMAIN.md: "v6 drops G1 and needs persistence > 1 h for G3/G4"). Assumptions, to
confirm against the NCI text:
- G2 "140-159 / 90-99, recurrent or persistent": at least two post-dose readings >= 140/90.
- G3 ">= 160/100 persisting over 1 h, or SBP > 140 plus a rise of SBP > 20 or MAP > 15 from baseline": a run
  of consecutive post-dose readings meeting either condition whose first and last readings are more than
  60 min apart (we also require the rise clause to persist, per DOMAIN.md's reading of v6).
- G4 ">= 180/110 persisting over 1 h": the same persistence on readings >= 180 or >= 110.
- No G1 in v6: a session below G2 has grade 0.
A persistence is measured between readings actually taken (first to last of the run), never extrapolated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.reading_runs import longest_span_minutes

PERSISTENCE_MIN = 60.0


def v5_reading_grade(sbp: pd.Series, dbp: pd.Series) -> pd.Series:
    grade = np.select(
        [(sbp >= 160) | (dbp >= 100), (sbp >= 140) | (dbp >= 90), (sbp >= 120) | (dbp >= 80)], [3, 2, 1], default=0
    )
    return pd.Series(grade, index=sbp.index)


def hypertension_grades(readings: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Per session: `ctcae_v5_hypertension_grade` and `ctcae_v6_hypertension_grade` (0 = below G1 / G2).

    `readings` from `vital_readings.prepare_readings`; `baseline` indexed by session_id with baseline_sbp_mmhg
    and baseline_map_mmhg (for the v6 rise-from-baseline clause; a session without a baseline cannot meet it).
    """
    post = readings.loc[readings["is_post_dose"]]
    sessions = pd.Index(post["session_id"].unique(), name="session_id")
    sbp, dbp = post["sbp_mmhg"], post["dbp_mmhg"]
    v5 = v5_reading_grade(sbp, dbp).groupby(post["session_id"]).max()

    base = baseline.reindex(post["session_id"].to_numpy())
    rise = (sbp > 140) & (
        (sbp - base["baseline_sbp_mmhg"].to_numpy() > 20)
        | (post["map_mmhg"] - base["baseline_map_mmhg"].to_numpy() > 15)
    )
    g3_reading = (sbp >= 160) | (dbp >= 100) | rise.fillna(False)
    g4_reading = (sbp >= 180) | (dbp >= 110)

    def persists(meets: pd.Series) -> pd.Series:
        span = longest_span_minutes(post["session_id"], meets.fillna(False).astype(bool), post["minutes_from_start"])
        return (span > PERSISTENCE_MIN).reindex(sessions, fill_value=False)

    recurrent = ((sbp >= 140) | (dbp >= 90)).groupby(post["session_id"]).sum().reindex(sessions) >= 2
    v6 = np.select([persists(g4_reading), persists(g3_reading), recurrent], [4, 3, 2], default=0)
    return pd.DataFrame(
        {
            "ctcae_v5_hypertension_grade": v5.reindex(sessions).fillna(0).astype(int).to_numpy(),
            "ctcae_v6_hypertension_grade": v6.astype(int),
        },
        index=sessions,
    )
