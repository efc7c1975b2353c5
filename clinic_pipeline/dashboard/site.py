"""The static site as bytes: `index.html` (page, data, script and style inline) plus `csv/<table>.csv`.

Pure: publication marts and the manifest in, files out (`build.py` reads the lake and publishes). Every
number on the page and in the CSVs comes from the suppressed tables built here, in this order: the exposure
lattice first (every other view takes the state of its denominators from it), then incidence, the funnel
(its totals feed the SPC and G charts), and the views with their own lattices.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard import incidence, outcome_views, session_views, trend_views
from clinic_pipeline.dashboard.suppression import SUPPRESSED_LABEL, THRESHOLD
from clinic_pipeline.dashboard.tables import PublishedTable, label_order

# The publication marts the site is built from; internal marts are never read.
REQUIRED_MARTS = (
    "ae_incidence",
    "ae_exposure",
    "spc_weekly",
    "spc_g_chart",
    "funnel_clinics",
    "funnel_limits",
    "bp_curves",
    "bp_shift_table",
    "cadss_by_infusion",
    "phq9_trajectories",
    "phq9_outcomes",
    "breach_summary",
    "monitoring_compliance",
    "discharge_readiness",
    "serious_event_listing",
    "suicidality_listing",
    "rule_thresholds",
)
FILTERS = ["clinic_id", "protocol", "conmed_stratum", "infusion_bucket", "severity", "seriousness", "relatedness"]
DISCLAIMERS = [
    "Ketamine for depression, PTSD and pain is largely off-label (esketamine nasal spray is the approved "
    "product for treatment-resistant depression); these figures describe care as given in the network, not "
    "approved uses.",
    "A reported adverse event is not proof that the treatment caused it: relatedness is the clinician's "
    "judgement, and events detected from vital signs or questionnaires are not assessed for causality.",
    f"Small numbers: counts from 1 to {THRESHOLD - 1} are shown as \u201c{SUPPRESSED_LABEL}\u201d, and some "
    "larger counts are hidden as well so that a hidden count cannot be worked out from totals; rates are "
    "shown only when their numerator and denominator are. Rates on few events are unstable.",
    "Data may be incomplete: see the data-quality banner; late data changes figures at the next run.",
]


@dataclass
class Site:
    files: dict[str, bytes]
    tables: dict[str, PublishedTable]
    data: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


def build_site(marts: dict[str, pd.DataFrame], manifest: dict[str, Any], run_id: str) -> Site:
    """Every view, suppressed; the page and its CSVs."""
    lattices = incidence.suppressed_incidence(marts["ae_incidence"], marts["ae_exposure"])
    exposure = incidence.exposure_labeled(lattices)
    events = incidence.event_totals(lattices)
    funnel, funnel_states = trend_views.funnel_view(marts["funnel_clinics"], exposure)
    buckets = [b for b in lattices.coding.labels["infusion_bucket"] if b != "all"]
    tables = {
        t.name: t
        for t in [
            trend_views.spc_view(marts["spc_weekly"], exposure, funnel_states, events),
            trend_views.g_chart_view(marts["spc_g_chart"], funnel_states),
            funnel,
            trend_views.funnel_limits_view(marts["funnel_limits"]),
            session_views.bp_curves_view(marts["bp_curves"]),
            session_views.thresholds_view(marts["rule_thresholds"]),
            session_views.bp_shift_view(marts["bp_shift_table"]),
            session_views.cadss_view(marts["cadss_by_infusion"]),
            session_views.breach_view(marts["breach_summary"], exposure),
            session_views.monitoring_view(marts["monitoring_compliance"], exposure),
            session_views.discharge_view(marts["discharge_readiness"], exposure),
            outcome_views.phq9_trajectories_view(marts["phq9_trajectories"]),
            outcome_views.phq9_outcomes_view(marts["phq9_outcomes"]),
            outcome_views.suicidality_view(marts["suicidality_listing"]),
            outcome_views.serious_listing_view(marts["serious_event_listing"], buckets),
        ]
    }
    incidence_table = incidence_csv_table(lattices)
    data = {
        "meta": {
            "title": "Ketamine infusion safety",
            "run_id": run_id,
            "as_of": manifest.get("as_of"),
            "rules_digest": str(manifest.get("rules_digest") or "")[:12],
            "threshold": THRESHOLD,
            "suppressed_label": SUPPRESSED_LABEL,
        },
        "disclaimers": DISCLAIMERS,
        "quality": outcome_views.quality_banner(manifest),
        "filters": filter_options(lattices, tables),
        "incidence": incidence_page_data(lattices),
        "tables": {name: table.to_page() for name, table in tables.items()},
    }
    csv_files = {f"csv/{name}.csv": table.to_csv() for name, table in tables.items()}
    csv_files["csv/ae_incidence.csv"] = incidence_table.to_csv()
    csv_files["csv/ae_exposure.csv"] = exposure_csv_table(lattices).to_csv()
    page = render_page(data)
    files = {"index.html": page, **dict(sorted(csv_files.items()))}
    summary = {
        "run_id": run_id,
        "as_of": manifest.get("as_of"),
        "rules_digest": manifest.get("rules_digest"),
        "files": {name: hashlib.sha256(body).hexdigest() for name, body in files.items()},
        "suppression": {
            "exposure": _counts(lattices.exposure_result),
            "incidence": _counts(lattices.incidence_result),
        },
    }
    files["site.json"] = (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode("utf-8")
    tables_all = {**tables, "ae_incidence": incidence_table}
    return Site(files, tables_all, data, summary)


def filter_options(lattices: incidence.IncidenceLattices, tables: dict[str, PublishedTable]) -> dict[str, list]:
    """The values each filter offers ("all" first)."""
    labels = lattices.coding.labels
    options: dict[str, list[str]] = {d: list(labels[d]) for d in incidence.EXPOSURE_DIMS}
    extra_clinics = tables["funnel_clinics"].frame["clinic_id"].tolist()
    options["clinic_id"] = label_order([*options["clinic_id"], *(c for c in extra_clinics if c != "network")])
    for dim in incidence.EVENT_FILTERS:
        values = [f.split("=", 1)[1] for f in labels["event_filter"] if f.startswith(f"{dim}=")]
        options[dim] = ["all", *values]
    return options


def incidence_page_data(lattices: incidence.IncidenceLattices) -> dict[str, Any]:
    """Compact incidence data: exposure per "c.p.s.b" key, and per "c.p.s.b.f" view the published cells
    [row, events, patients, ...] and the rows suppressed ("<11"). Rows absent from a view are 0."""
    coding = lattices.coding
    exposure = lattices.exposure
    exposure_keys = _keys(exposure, incidence.EXPOSURE_DIMS)
    exposure_data = {
        key: [None if s else int(i), None if s else int(p)]
        for key, i, p, s in zip(
            exposure_keys, exposure["infusions"], exposure["patients"], exposure["suppressed"], strict=True
        )
    }
    cells = _page_cells(lattices.incidence)
    view_keys = _keys(cells, incidence.INCIDENCE_DIMS[:-1])
    views: dict[str, list[list[int]]] = {}
    for key, row, ev, pt, hidden in zip(
        view_keys, cells["row"], cells["events"], cells["patients"], cells["suppressed"], strict=True
    ):
        shown_cells, hidden_rows = views.setdefault(key, [[], []])
        if hidden:
            hidden_rows.append(int(row))
        else:
            shown_cells.extend((int(row), int(ev), int(pt)))
    return {
        "labels": {d: coding.labels[d] for d in [*incidence.EXPOSURE_DIMS, "event_filter"]},
        "rows": coding.rows,
        "exposure": exposure_data,
        "views": views,
    }


def incidence_csv_table(lattices: incidence.IncidenceLattices) -> PublishedTable:
    """The incidence data of the page as a long CSV (same cells, same suppression)."""
    coding = lattices.coding
    cells = _page_cells(lattices.incidence).reset_index(drop=True)
    labeled = incidence.labeled(cells, coding, [*incidence.EXPOSURE_DIMS, "event_filter"])
    exposure = incidence.exposure_labeled(lattices)[[*incidence.EXPOSURE_DIMS, "infusions", "patients", "suppressed"]]
    exposure = exposure.rename(columns={"patients": "patients_exposed", "suppressed": "exposure_suppressed"})
    labeled = labeled.merge(exposure, on=incidence.EXPOSURE_DIMS, how="left")
    rows = pd.DataFrame(coding.rows)
    hidden = labeled["suppressed"].to_numpy(dtype=bool)
    exposure_hidden = labeled["exposure_suppressed"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    filter_dim = labeled["event_filter"].str.split("=", n=1).str[0].where(labeled["event_filter"] != "any", "any")
    filter_value = labeled["event_filter"].str.split("=", n=1).str[1].fillna("any")
    out = pd.DataFrame(
        {
            "clinic_id": labeled["clinic_id"],
            "protocol": labeled["protocol"],
            "conmed_stratum": labeled["conmed_stratum"],
            "infusion_bucket": labeled["infusion_bucket"],
            "event_filter": filter_dim,
            "event_filter_value": filter_value,
            "body_system": rows["body_system"].to_numpy()[labeled["row"].to_numpy()],
            "term": rows["term"].to_numpy()[labeled["row"].to_numpy()],
            "events": pd.Series(labeled["events"], dtype="Int64").mask(pd.Series(hidden)),
            "infusions": pd.Series(labeled["infusions"], dtype="Int64").mask(pd.Series(exposure_hidden)),
            "patients_with_event": pd.Series(labeled["patients"], dtype="Int64").mask(pd.Series(hidden)),
            "patients_exposed": pd.Series(labeled["patients_exposed"], dtype="Int64").mask(pd.Series(exposure_hidden)),
        }
    )
    shown = ~hidden & ~exposure_hidden
    out["per_100_infusions"] = np.where(shown, 100 * labeled["events"] / labeled["infusions"].clip(lower=1), np.nan)
    out["pct_patients"] = np.where(shown, 100 * labeled["patients"] / labeled["patients_exposed"].clip(lower=1), np.nan)
    return PublishedTable(
        "ae_incidence",
        "Adverse-event incidence per patient and per 100 infusions",
        out,
        counts=("events", "infusions", "patients_with_event", "patients_exposed"),
        filters=tuple(FILTERS),
    )


def exposure_csv_table(lattices: incidence.IncidenceLattices) -> PublishedTable:
    frame = incidence.exposure_labeled(lattices)
    hidden = frame["suppressed"].to_numpy(dtype=bool)
    out = frame[incidence.EXPOSURE_DIMS].copy()
    out["infusions"] = pd.Series(frame["infusions"], dtype="Int64").mask(pd.Series(hidden))
    out["patients"] = pd.Series(frame["patients"], dtype="Int64").mask(pd.Series(hidden))
    return PublishedTable(
        "ae_exposure",
        "Infusions and patients per filter combination (the denominators)",
        out,
        counts=("infusions", "patients"),
        filters=tuple(incidence.EXPOSURE_DIMS),
    )


def render_page(data: dict[str, Any]) -> bytes:
    """index.html with the data, script and style inline (no external request of any kind)."""
    assets = resources.files("clinic_pipeline.dashboard") / "assets"
    template = (assets / "index.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")  # never close the script element early
    page = (
        template.replace("{{TITLE}}", html.escape(str(data["meta"]["title"])))
        .replace("{{STYLE}}", (assets / "dashboard.css").read_text(encoding="utf-8"))
        .replace("{{SCRIPT}}", (assets / "dashboard.js").read_text(encoding="utf-8"))
        .replace("{{DATA}}", payload)
    )
    return page.encode("utf-8")


def _page_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The incidence cells the page and the CSV hold. Where the selection's exposure is shown: every non-zero
    or suppressed cell (absent = 0). Where it is suppressed: only the cells shown (absent = unknown)."""
    listed = (cells["events"] > 0) | (cells["patients"] > 0) | cells["suppressed"]
    return cells.loc[listed & (cells["exposure_shown"] | ~cells["suppressed"])]


def _keys(frame: pd.DataFrame, dims: list[str]) -> list[str]:
    parts = [frame[d].astype("int64").astype(str) for d in dims]
    key = parts[0]
    for part in parts[1:]:
        key = key + "." + part
    return key.tolist()


def _counts(result: Any) -> dict[str, int]:
    return {
        "cells": int(result.suppressed.size),
        "suppressed": int(result.suppressed.sum()),
        "primary": int(result.primary.sum()),
        "unresolved_groups": int(result.unresolved),
    }
