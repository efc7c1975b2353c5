"""Small-cell suppression: the method on hand-made tables, and the published site under every filter combination.

Hand-made tables say which cells must be hidden (worked out by hand in the comments). The property tests
read only what a reader gets (the data embedded in index.html, the CSVs) and look for a count from 1 to 10,
shown or derivable by adding and subtracting published numbers (`disclosure.py`, written apart from the
package). The linear audit (`exact_disclosures`) checks the one thing subtraction along single relations
cannot: a hidden count pinned down by a chain of totals.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest

from clinic_pipeline.dashboard import incidence
from clinic_pipeline.dashboard.audit import exact_disclosures
from clinic_pipeline.dashboard.suppression import ALL, Complement, Relation, is_small, suppress_cells
from tests.dashboard.conftest import PublishedDashboard
from tests.dashboard.disclosure import derivable_small_counts, small_counts

# ------------------------------------------------------------------------------------------- hand-made tables


def test_is_small_marks_one_to_ten_only():
    assert is_small([0, 1, 5, 10, 11, 250]).tolist() == [False, True, True, True, False, False]


def one_way(values: dict[str, int]) -> pd.DataFrame:
    """A one-dimensional table with its total row."""
    frame = pd.DataFrame({"clinic": list(values), "n": list(values.values())})
    return pd.concat([frame, pd.DataFrame({"clinic": [ALL], "n": [sum(values.values())]})], ignore_index=True)


def hidden(frame: pd.DataFrame, suppressed: np.ndarray, key: str = "clinic") -> set[str]:
    return set(frame.loc[suppressed, key])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 5 alone would be 30 - 12 - 13: the smallest other non-zero part (12) is hidden with it (sum 17).
        ({"A": 5, "B": 12, "C": 13}, {"A", "B"}),
        # 3 and 4 are both small, but together 7 = 20 - 13 is derivable: C joins them (sum 20).
        ({"A": 3, "B": 4, "C": 13}, {"A", "B", "C"}),
        # Nothing small: nothing hidden. 0 is shown.
        ({"A": 0, "B": 15, "C": 40}, set()),
        # A small total hides itself; its only non-zero part (4) is small too; the hypercube pairs A with its
        # sibling B, so the 0 is hidden as well (siblings are preferred to totals: see hypercube.py).
        ({"A": 4, "B": 0}, {"A", "B", ALL}),
        # Two small parts adding up to 12 >= 11: no third cell needed.
        ({"A": 5, "B": 7, "C": 30}, {"A", "B"}),
    ],
)
def test_one_way_table(values, expected):
    frame = one_way(values)
    result = suppress_cells(frame, ["clinic"], ["n"], [Relation("clinic", ("n",))])
    assert hidden(result.cells, result.suppressed) == expected


def test_two_way_table_with_margins_hides_a_rectangle():
    """rows r1-r3 x columns c1-c2 with both margins; r1c1 = 2 is the only small cell.

    Row r1 would give it away (22 - 20): r1c2 is hidden. Column c1 would (47 - 15 - 30): its smallest other
    cell r2c1 = 15 is hidden. Column c2 now has r1c2 alone: r2c2 = 14 (the smallest) joins. Row r2 then has
    two hidden cells (29), row r3 none: the four corners of a rectangle, nothing else.
    """
    grid = {("r1", "c1"): 2, ("r1", "c2"): 20, ("r2", "c1"): 15, ("r2", "c2"): 14, ("r3", "c1"): 30, ("r3", "c2"): 25}
    frame = with_margins(grid)
    result = suppress_cells(frame, ["row", "col"], ["n"], [Relation("row", ("n",)), Relation("col", ("n",))])
    cells = result.cells.assign(hidden=result.suppressed)
    shown_hidden = {(r, c) for r, c, h in cells[["row", "col", "hidden"]].itertuples(index=False) if h}
    assert shown_hidden == {("r1", "c1"), ("r1", "c2"), ("r2", "c1"), ("r2", "c2")}
    relations = [Relation("row", ("n",)), Relation("col", ("n",))]
    assert exact_disclosures(result.cells, ["row", "col"], "n", relations, result.suppressed) == []


def test_complement_hides_a_count_whose_difference_to_its_denominator_is_small():
    """25 patients exposed, 20 with the event: the 5 without it would be derivable, so 20 is hidden."""
    frame = pd.DataFrame({"term": ["nausea", "headache"], "patients": [20, 12], "exposed": [25, 25], "shown": True})
    result = suppress_cells(frame, ["term"], ["patients"], complements=[Complement("patients", "exposed", "shown")])
    assert result.suppressed.tolist() == [True, False]


def test_protected_cells_are_never_used_to_hide_others():
    """The total is published elsewhere (protected): the complement must be a part, and B (12) is."""
    frame = one_way({"A": 4, "B": 12, "C": 13})
    total = (frame["clinic"] == ALL).to_numpy()
    result = suppress_cells(frame, ["clinic"], ["n"], [Relation("clinic", ("n",))], protected=total)
    assert hidden(result.cells, result.suppressed) == {"A", "B"}


def with_margins(grid: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = [{"row": r, "col": c, "n": n} for (r, c), n in grid.items()]
    frame = pd.DataFrame(rows)
    by_row = frame.groupby("row", as_index=False)["n"].sum().assign(col=ALL)
    by_col = frame.groupby("col", as_index=False)["n"].sum().assign(row=ALL)
    grand = pd.DataFrame({"row": [ALL], "col": [ALL], "n": [frame["n"].sum()]})
    return pd.concat([frame, by_row, by_col, grand], ignore_index=True)[["row", "col", "n"]]


def test_audit_finds_a_cell_pinned_down_by_a_chain_of_totals():
    """Two hidden rectangles joined by one hidden cell (r2, c3): every row and column has two or more hidden
    cells, so no single subtraction works, yet rows r1 + r2 minus columns c1 + c2 leave exactly r2c3."""
    rows, cols = ["r1", "r2", "r3", "r4"], ["c1", "c2", "c3", "c4"]
    grid = {(r, c): 20 + 3 * i + j for i, r in enumerate(rows) for j, c in enumerate(cols)}
    grid[("r2", "c3")] = 4
    frame = with_margins(grid)
    hide = {("r1", "c1"), ("r1", "c2"), ("r2", "c1"), ("r2", "c2"), ("r2", "c3")}
    hide |= {("r3", "c3"), ("r3", "c4"), ("r4", "c3"), ("r4", "c4")}
    suppressed = np.array([(r, c) in hide for r, c in frame[["row", "col"]].itertuples(index=False)])
    relations = [Relation("row", ("n",)), Relation("col", ("n",))]
    # The one-relation rules hold for this pattern ...
    attacker_view = frame.assign(n=frame["n"].where(~suppressed, None))
    assert derivable_small_counts(attacker_view, ["row", "col"], "n", [("row", ALL, None), ("col", ALL, None)]) == []
    # ... but the audit finds the bridge cell.
    determined = exact_disclosures(frame, ["row", "col"], "n", relations, suppressed)
    assert [tuple(frame.loc[i, ["row", "col"]]) for i in determined] == [("r2", "c3")]
    # suppress_cells itself never leaves such a cell: a hypercube around it is hidden.
    result = suppress_cells(frame, ["row", "col"], ["n"], relations)
    assert exact_disclosures(result.cells, ["row", "col"], "n", relations, result.suppressed) == []


@pytest.mark.parametrize("seed", range(12))
def test_random_three_way_tables_have_no_derivable_small_count(seed):
    """Seeded random 3-way tables (with every margin), many small cells: the suppressed pattern passes both the
    spreadsheet attacker and the linear audit."""
    rng = random.Random(seed)
    sizes = [rng.randint(2, 4), rng.randint(2, 4), rng.randint(2, 3)]
    members = [[f"{d}{i}" for i in range(n)] for d, n in zip("abc", sizes, strict=True)]
    base = pd.DataFrame(
        [(a, b, c, rng.choice([0, 0, 1, 2, 3, 7, 12, 15, 30, 60])) for a, b, c in itertools.product(*members)],
        columns=["a", "b", "c", "n"],
    )
    frames = []
    for rolled in itertools.chain.from_iterable(itertools.combinations("abc", k) for k in range(4)):
        keep = [d for d in "abc" if d not in rolled]
        summed = base.groupby(keep, as_index=False)["n"].sum() if keep else base[["n"]].sum().to_frame().T
        frames.append(summed.assign(**dict.fromkeys(rolled, ALL)))
    table = pd.concat(frames, ignore_index=True)[["a", "b", "c", "n"]]
    relations = [Relation(d, ("n",)) for d in "abc"]
    result = suppress_cells(table, list("abc"), ["n"], relations)
    cells = result.cells
    assert not small_counts(cells.loc[~result.suppressed, "n"]), "a small count is shown"
    view = cells.assign(n=cells["n"].where(~result.suppressed, None))
    assert derivable_small_counts(view, list("abc"), "n", [(d, ALL, None) for d in "abc"]) == []
    assert exact_disclosures(cells, list("abc"), "n", relations, result.suppressed, targets=result.primary) == []


# ------------------------------------------------------------------------------------------ the published site


def test_no_small_count_anywhere_in_the_page_data(dashboard: PublishedDashboard):
    data = dashboard.data
    for name, table in data["tables"].items():
        for column in table["counts"]:
            values = [row[table["columns"].index(column)] for row in table["rows"]]
            assert not small_counts(values), f"{name}.{column} shows a count from 1 to 10"
    for key, (infusions, patients) in data["incidence"]["exposure"].items():
        assert not small_counts([infusions, patients]), f"exposure {key}"
    for key, (shown_cells, _hidden_rows) in data["incidence"]["views"].items():
        counts = [v for i, v in enumerate(shown_cells) if i % 3]  # [row, events, patients, ...]
        assert not small_counts(counts), f"incidence view {key}"
    banner = {k: v for k, v in data["quality"].items() if k != "days_behind_by_source"}  # days, not counts
    flat = [v for v in _walk(banner) if isinstance(v, (int, str))]
    assert not small_counts([v for v in flat if isinstance(v, int) and not isinstance(v, bool)])
    assert {v for v in flat if isinstance(v, str) and v.startswith("<")} <= {"<11"}


def _walk(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


ORDINAL_COLUMNS = {
    "week_index",
    "event_index",
    "infusion_order",
    "infusion_label",
    "infusion_number",
    "infusion_bucket",
    "course_day",
    "minute_bin",
    "volume",
    "consecutive",
    "onset_minutes_from_start",
}


def test_no_small_count_in_any_csv(dashboard: PublishedDashboard):
    """Every integer column of every CSV is a declared count (checked) or a known ordinal (infusion number,
    week, minute...): a new count column cannot slip through unchecked."""
    declared = {name: set(t["counts"]) for name, t in dashboard.data["tables"].items()}
    declared["ae_incidence"] = {"events", "infusions", "patients_with_event", "patients_exposed"}
    declared["ae_exposure"] = {"infusions", "patients"}
    assert set(dashboard.csv_names()) == set(declared)
    for name in dashboard.csv_names():
        frame = dashboard.csv(name)
        for column in frame.columns:
            values = frame[column]
            integers = values[values != ""].str.fullmatch(r"-?\d+|<11").all() and (values != "").any()
            if column in declared[name]:
                assert not small_counts(values.tolist()), f"{name}.csv {column} shows a count from 1 to 10"
            elif integers and column not in ORDINAL_COLUMNS:
                pytest.fail(f"{name}.csv {column}: an integer column that is neither a count nor an ordinal")


def incidence_cells(data: dict) -> pd.DataFrame:
    """Every incidence cell as the page's reader knows it: a number, or None (hidden / not listed)."""
    inc = data["incidence"]
    labels = inc["labels"]
    filters, rows = len(labels["event_filter"]), len(inc["rows"])
    records = []
    for key, (infusions, _patients) in inc["exposure"].items():
        view_shown = infusions is not None
        codes = [int(c) for c in key.split(".")]
        for f in range(filters):
            shown_cells, hidden_rows = inc["views"].get(f"{key}.{f}", [[], []])
            published = {
                shown_cells[i]: (shown_cells[i + 1], shown_cells[i + 2]) for i in range(0, len(shown_cells), 3)
            }
            for r in range(rows):
                if r in published:
                    events, patients = published[r]
                elif view_shown and r not in hidden_rows:
                    events, patients = 0, 0
                else:
                    events, patients = None, None
                if events == 0 and patients == 0:
                    continue  # absent = a known 0 (the attacker's default)
                records.append((*codes, f, r, events, patients))
    columns = [*incidence.EXPOSURE_DIMS, "event_filter", "row", "events", "patients"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame.astype({c: "object" for c in ("events", "patients")})


def incidence_relations(data: dict) -> dict[str, list]:
    inc = data["incidence"]
    filters = inc["labels"]["event_filter"]
    by_dim = {d: [i for i, f in enumerate(filters) if f.startswith(f"{d}=")] for d in incidence.EVENT_FILTERS}
    systems = [i for i, r in enumerate(inc["rows"]) if r["level"] == "body_system"]
    patient_dims = [(d, 0, None) for d in incidence.PATIENT_DIMS]
    events = [*patient_dims, ("infusion_bucket", 0, None)]
    events += [("event_filter", 0, parts) for parts in by_dim.values() if parts]
    events.append(("row", 0, systems))
    for s in systems:
        name = inc["rows"][s]["body_system"]
        terms = [i for i, r in enumerate(inc["rows"]) if r["level"] == "term" and r["body_system"] == name]
        events.append(("row", s, terms))
    return {"events": events, "patients": patient_dims}


def test_no_incidence_count_derivable_by_subtraction(dashboard: PublishedDashboard):
    """Every filter combination at once: along every filter (and body system -> term), a shown total minus
    the shown cells never leaves a count from 1 to 10; nor does a patients-exposed minus patients-with-event."""
    data = dashboard.data
    cells = incidence_cells(data)
    dims = [*incidence.EXPOSURE_DIMS, "event_filter", "row"]
    for measure, relations in incidence_relations(data).items():
        found = derivable_small_counts(cells, dims, measure, relations)
        assert not found, "\n".join(map(str, found[:10]))
    exposure = pd.DataFrame(
        [(*map(int, k.split(".")), i, p) for k, (i, p) in data["incidence"]["exposure"].items()],
        columns=[*incidence.EXPOSURE_DIMS, "infusions", "patients"],
    ).astype({"infusions": "object", "patients": "object"})
    relations = [(d, 0, None) for d in incidence.PATIENT_DIMS]
    assert derivable_small_counts(exposure, incidence.EXPOSURE_DIMS, "patients", relations) == []
    relations.append(("infusion_bucket", 0, None))
    assert derivable_small_counts(exposure, incidence.EXPOSURE_DIMS, "infusions", relations) == []
    exposed = exposure.set_index(incidence.EXPOSURE_DIMS)["patients"]
    with_event = cells.dropna(subset=["patients"])
    key = pd.MultiIndex.from_frame(with_event[incidence.EXPOSURE_DIMS])
    rest = pd.to_numeric(exposed.reindex(key), errors="coerce").to_numpy() - with_event["patients"].astype(float)
    assert not rest.between(1, 10).any(), "patients exposed - patients with an event is a count from 1 to 10"


def test_every_filter_combination_shows_counts_and_rates_safely(dashboard: PublishedDashboard):
    """Exhaustively, every combination of the page's filters (what the script looks up): no count from 1 to 10,
    and a rate only where its numerator and denominator are both shown; a seeded sample re-checks the rates."""
    inc = dashboard.data["incidence"]
    labels = inc["labels"]
    rng = random.Random(5)
    combinations = 0
    for key, (infusions, patients) in inc["exposure"].items():
        for f in range(len(labels["event_filter"])):
            combinations += 1
            shown_cells, hidden_rows = inc["views"].get(f"{key}.{f}", [[], []])
            triples = [shown_cells[i : i + 3] for i in range(0, len(shown_cells), 3)]
            assert not small_counts([e for _, e, _ in triples] + [p for _, _, p in triples])
            assert not set(hidden_rows) & {r for r, _, _ in triples}
            if rng.random() < 0.05 and infusions is not None:
                for _row, events, with_event in triples:
                    assert events * 100 / infusions >= 0 and with_event <= patients
    assert combinations == len(inc["exposure"]) * len(labels["event_filter"])
    table = dashboard.csv("ae_incidence")
    rate_rows = table.loc[table["per_100_infusions"] != ""]
    assert (rate_rows["events"] != "<11").all() and (rate_rows["infusions"] != "<11").all()
    recomputed = rate_rows["events"].astype(float) * 100 / rate_rows["infusions"].astype(float)
    assert np.allclose(recomputed, rate_rows["per_100_infusions"].astype(float), atol=1e-3)


TABLE_RELATIONS = {
    # table: (dimension columns, {count: dimensions along which it adds up ("all" = the total)})
    "breach_summary": (
        ["clinic_id", "protocol", "infusion_bucket", "rule"],
        {"sessions_with_breach": ["clinic_id", "protocol", "infusion_bucket"], "breaches_not_recorded": None},
    ),
    "monitoring_compliance": (
        ["clinic_id", "protocol", "infusion_bucket", "check"],
        {"sessions_evaluated": ["clinic_id", "protocol", "infusion_bucket"], "sessions_passed": None},
    ),
    "phq9_outcomes": (
        ["clinic_id", "protocol", "readout"],
        {c: ["clinic_id", "protocol"] for c in ("patients_with_baseline", "patients_assessed", "responders")},
    ),
    "suicidality_flags": (["clinic_id", "protocol", "category"], {"flags": None, "patients": None}),
    "bp_shift_table": (["protocol", "baseline_band", "peak_band"], {"sessions": ["protocol"]}),
}


@pytest.mark.parametrize("name", sorted(TABLE_RELATIONS))
def test_no_count_derivable_in_tables_with_all_rows(dashboard: PublishedDashboard, name):
    dims, counts = TABLE_RELATIONS[name]
    frame = dashboard.table(name)
    for count, additive in counts.items():
        along = additive or [d for d in dims if d in ("clinic_id", "protocol", "infusion_bucket")]
        relations = [(d, ALL, None) for d in along]
        if name == "suicidality_flags" and count == "flags":
            relations += [
                ("category", "any_positive", ["phq9_item9", "cssrs_high_risk"]),
                ("category", "any_positive", ["treatment_emergent", "not_worse", "no_baseline"]),
            ]
        found = derivable_small_counts(frame, dims, count, relations)
        assert not found, f"{name}: " + "\n".join(map(str, found[:5]))


def test_trend_totals_cannot_be_differenced(dashboard: PublishedDashboard):
    """SPC: a clinic's weeks add up to its funnel total (and the network's weeks to the clinics'); the
    funnel's clinics add up to the network row. No subtraction yields a count from 1 to 10."""
    spc = dashboard.table("spc_weekly")
    p_chart = spc.loc[spc["chart"] == "p_sessions_with_ae", ["scope", "week_index", "infusions", "count"]]
    funnel = dashboard.table("funnel_clinics")
    any_ae = funnel.loc[funnel["measure"] == "sessions_with_any_ae"]
    totals = pd.DataFrame(
        {
            "scope": any_ae["clinic_id"],
            "week_index": "all",
            "infusions": any_ae["infusions"],
            "count": any_ae["sessions_with_event"],
        }
    )
    cells = pd.concat([p_chart.astype({"week_index": str}), totals], ignore_index=True)
    for count in ("infusions", "count"):
        found = derivable_small_counts(cells, ["scope", "week_index"], count, [("week_index", "all", None)])
        found += derivable_small_counts(cells, ["scope", "week_index"], count, [("scope", "network", None)])
        assert not found, "\n".join(map(str, found[:5]))
    for measure in funnel["measure"].unique():
        rows = funnel.loc[funnel["measure"] == measure]
        assert (
            derivable_small_counts(rows, ["clinic_id"], "sessions_with_event", [("clinic_id", "network", None)]) == []
        )


def test_linear_audit_finds_no_primary_cell_determined(clean_build):
    """The attacker with linear algebra, on the site's own lattices: no primary-suppressed cell is determined
    by any combination of the published totals."""
    lattices = incidence.suppressed_incidence(clean_build.mart("ae_incidence"), clean_build.mart("ae_exposure"))
    exposure, result = lattices.exposure_result, lattices.incidence_result
    for measure in ("infusions", "patients"):
        assert (
            exact_disclosures(
                exposure.cells,
                incidence.EXPOSURE_DIMS,
                measure,
                lattices.exposure_relations,
                exposure.suppressed,
                targets=exposure.primary,
            )
            == []
        )
    for measure in ("events", "patients"):
        assert (
            exact_disclosures(
                result.cells,
                incidence.INCIDENCE_DIMS,
                measure,
                lattices.incidence_relations,
                result.suppressed,
                targets=result.primary,
            )
            == []
        )
    assert result.uncertified == 0 and result.unresolved == 0
