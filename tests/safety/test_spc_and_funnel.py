"""SPC charts and the funnel on tiny series whose limits were computed by hand (numbers in the comments)."""

from __future__ import annotations

import pandas as pd
import pytest

from transforms.safety.funnel import funnel_clinics, funnel_limits
from transforms.safety.spc import g_chart, run_signal, weekly_charts

MONDAY = pd.Timestamp("2026-03-02 15:00", tz="UTC")


def outcomes_for_weeks(weeks: list[tuple[int, int, int]], clinic: str = "C001") -> pd.DataFrame:
    """Sessions per week: (n sessions, sessions with an AE, AEs); each AE session gets an equal share of AEs."""
    rows = []
    for week, (n, with_ae, events) in enumerate(weeks):
        per = [0] * n
        for i in range(events):
            per[i % with_ae] += 1
        for i in range(n):
            rows.append(
                {
                    "session_id": f"{clinic}-W{week}-{i:02d}",
                    "clinic_id": clinic,
                    "protocol": "iv_depression",
                    "started_at": MONDAY + pd.Timedelta(days=7 * week, minutes=15 * i),
                    "ae_count": per[i],
                    "any_ae": per[i] > 0,
                    "severe_event": False,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def charts() -> pd.DataFrame:
    # Three weeks: n = 10, 20, 10 infusions; sessions with an AE 1, 4, 5; AEs 1, 6, 12.
    return weekly_charts(
        outcomes_for_weeks([(10, 1, 1), (20, 4, 6), (10, 5, 12)]), as_of=pd.Timestamp("2026-03-20", tz="UTC")
    )


def test_p_chart_limits_by_hand(charts):
    # p̄ = (1+4+5)/(10+20+10) = 0.25. n=10: 3·√(0.25·0.75/10) = 0.41079 -> UCL 0.66079, LCL -0.16079 -> 0.
    # n=20: 3·√(0.25·0.75/20) = 0.29047 -> UCL 0.54047, LCL -> 0. Points 0.1, 0.2, 0.5: all inside.
    p = charts.loc[(charts["chart"] == "p_sessions_with_ae") & (charts["scope"] == "network")]
    assert p["value"].tolist() == pytest.approx([0.1, 0.2, 0.5])
    assert p["center"].tolist() == pytest.approx([0.25] * 3)
    assert p["ucl"].tolist() == pytest.approx([0.66079, 0.54047, 0.66079], abs=1e-5)
    assert p["lcl"].tolist() == [0.0, 0.0, 0.0]
    assert not p["signal"].any()
    assert p["week_index"].tolist() == [1, 2, 3] and p["week_start"].tolist() == [
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
    ]
    # As of Friday 20 March the third week (16-22 March) is still running.
    assert p["week_complete"].tolist() == [True, True, False]


def test_u_chart_flags_the_point_beyond_its_upper_limit(charts):
    # ū = (1+6+12)/40 = 0.475 per infusion. n=10: 3·√(0.475/10) = 0.65383 -> UCL 1.12883 (112.883 per 100),
    # LCL -> 0. n=20: 3·√(0.475/20) = 0.46233 -> UCL 93.733, LCL 1.2669 per 100. Week 3: 12/10 = 120 per
    # 100 > 112.883 -> beyond the limit; weeks 1 (10) and 2 (30) inside.
    u = charts.loc[(charts["chart"] == "u_events_per_100_infusions") & (charts["scope"] == "network")]
    assert u["value"].tolist() == pytest.approx([10.0, 30.0, 120.0])
    assert u["center"].iloc[0] == pytest.approx(47.5)
    assert u["ucl"].tolist() == pytest.approx([112.883, 93.733, 112.883], abs=1e-3)
    assert u["lcl"].tolist() == pytest.approx([0.0, 1.2669, 0.0], abs=1e-4)
    assert u["beyond_limits"].tolist() == [False, False, True]
    # The clinic's own series is the same here (one clinic).
    clinic = charts.loc[(charts["chart"] == "u_events_per_100_infusions") & (charts["scope"] == "C001")]
    assert clinic["beyond_limits"].tolist() == [False, False, True]


def test_a_run_of_eight_on_one_side_is_a_special_cause():
    values = pd.Series([1, 2, 2, 2, 2, 2, 2, 2, 2, 0, 2, 2], dtype=float)
    center = pd.Series(1.0, index=values.index)
    series = pd.Series("a", index=values.index)
    # Index 0 sits on the centre (breaks runs); 1-8 are eight points above -> signal; 10-11 only two.
    assert run_signal(values, center, series, 8).tolist() == [False] + [True] * 8 + [False] * 3
    assert not run_signal(values, center, series, 9).any()


def test_g_chart_by_hand():
    # 20 infusions in time order, severe events at positions 3, 10 and 12 (0-based): gaps (infusions without a
    # severe event in between) 3, 6, 1, and 7 since the last one (open). ḡ = 10/3 = 3.3333;
    # UCL = ḡ + 3·√(ḡ(ḡ+1)) = 3.3333 + 3·3.8006 = 14.7351; LCL -> 0; geometric median with p = 1/(ḡ+1):
    # ln 0.5 / ln(1 - 0.23077) - 1 = 1.6419.
    severe = {3, 10, 12}
    outcomes = pd.DataFrame(
        [
            {
                "session_id": f"S{i:02d}",
                "clinic_id": "C001",
                "protocol": "iv_depression",
                "started_at": MONDAY + pd.Timedelta(hours=i),
                "ae_count": int(i in severe),
                "any_ae": i in severe,
                "severe_event": i in severe,
            }
            for i in range(20)
        ]
    )
    chart = g_chart(outcomes)
    network = chart.loc[chart["scope"] == "network"]
    assert network["infusions_between"].tolist() == [3.0, 6.0, 1.0, 7.0]
    assert network["open_interval"].tolist() == [False, False, False, True]
    assert network["center"].iloc[0] == pytest.approx(10 / 3)
    assert network["ucl"].iloc[0] == pytest.approx(14.7351, abs=1e-4)
    assert network["lcl"].iloc[0] == 0.0
    assert network["center_median"].iloc[0] == pytest.approx(1.6419, abs=1e-4)
    assert not network["signal"].any()
    assert chart.loc[chart["scope"] == "C001", "infusions_between"].tolist() == [3.0, 6.0, 1.0, 7.0]


def test_funnel_by_hand():
    # Clinic A: 10 of 100 infusions with an AE; clinic B: 80 of 400. p̄ = 90/500 = 0.18.
    # n=100: s = √(0.18·0.82/100) = 0.038419 -> 95 %: 0.18 ± 1.96·s = (0.10470, 0.25530);
    #        99.8 %: 0.18 ± 3.09·s = (0.06128, 0.29872): A at 0.10 is below the 95 % limit only.
    # n=400: s = 0.019209 -> 95 %: (0.14235, 0.21765): B at 0.20 is within.
    rows = [{"session_id": f"A{i}", "clinic_id": "A", "any_ae": i < 10, "severe_event": False} for i in range(100)]
    rows += [{"session_id": f"B{i}", "clinic_id": "B", "any_ae": i < 80, "severe_event": i < 4} for i in range(400)]
    clinics = funnel_clinics(pd.DataFrame(rows), 1.959964, 3.090232)
    any_ae = clinics.loc[clinics["measure"] == "sessions_with_any_ae"].set_index("clinic_id")
    assert any_ae["target"].tolist() == pytest.approx([0.18, 0.18])
    assert any_ae.loc["A", ["lower_95", "upper_95"]].tolist() == pytest.approx([0.10470, 0.25530], abs=1e-5)
    assert any_ae.loc["A", ["lower_998", "upper_998"]].tolist() == pytest.approx([0.06128, 0.29872], abs=1e-5)
    assert any_ae.loc["B", ["lower_95", "upper_95"]].tolist() == pytest.approx([0.14235, 0.21765], abs=1e-5)
    assert any_ae["position"].to_dict() == {"A": "below_95", "B": "within"}
    assert (any_ae["n"].to_dict(), any_ae["count"].to_dict()) == ({"A": 100, "B": 400}, {"A": 10, "B": 80})
    curve = funnel_limits(clinics, 1.959964, 3.090232)
    assert curve["n"].min() == 1 and curve["n"].max() == 480
    # At n = 1: 0.18 ± 1.96·√(0.18·0.82) = 0.18 ± 0.75299 -> clipped to (0, 0.93299).
    at_1 = curve.loc[(curve["measure"] == "sessions_with_any_ae") & (curve["n"] == 1)].iloc[0]
    assert (at_1["lower_95"], at_1["upper_95"]) == pytest.approx((0.0, 0.93299), abs=1e-5)
