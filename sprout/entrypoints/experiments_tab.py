"""The web page's Experiments tab: the report of `sprout report` as a table, each outcome's
arms as bars with their 95% intervals, and how the users' times to a first message spread
in each arm."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import altair as alt
import streamlit as st

from sprout.core.settings import Settings
from sprout.entrypoints.web_core import WebCore
from sprout.report import ReportError, experiments_to_report, read_report
from sprout.report.figures import ALL_CHANNELS, MIN_USERS, Figure
from sprout.report.outcomes import OUTCOMES
from sprout.report.output import COLUMNS, table_rows

ROW_PX = 35  # a table row's height: the whole table shows, without scrolling
FRESH_S = 60  # the report is worked out again at most once a minute
TIMES = next(outcome for outcome in OUTCOMES if outcome.key == "first_message_s")


@dataclass(frozen=True)
class _Shown:
    figures: list[Figure]
    times: list[dict[str, Any]]  # one row per user: arm, channel, seconds


@st.cache_data(ttl=FRESH_S, show_spinner="Working out the report…")
def _report(_core: WebCore, database: str, path: str, name: str) -> _Shown:
    """One experiment's figures and times (the arguments after `_core` key the cache)."""
    (experiment,) = experiments_to_report(_core.settings, name)
    found = _core.call(read_report(_core.store, experiment, datetime.now(UTC)))
    channels = sorted({member.channel for member in found.members})
    arms = dict.fromkeys(figure.arm for figure in found.figures)  # the report's order
    times = [
        {"arm": arm, "channel": channel, "seconds": seconds}
        for arm in arms
        for channel in channels
        for seconds in found.user_values(TIMES, arm, channel)
    ]
    return _Shown(found.figures, times)


def experiments_tab(core: WebCore, settings: Settings) -> None:
    try:
        experiments = experiments_to_report(settings)
    except ReportError as reason:
        st.info(str(reason))
        return
    if not experiments:
        st.info(f"{settings.experiments_file} declares no experiments.")
        return
    names = [experiment.name for experiment in experiments]
    name = st.selectbox("Experiment", names, key="report_experiment")
    shown = _report(core, settings.sqlalchemy_url, str(settings.experiments_file), name)
    channels = list(dict.fromkeys(figure.channel for figure in shown.figures)) or [ALL_CHANNELS]
    channel = st.radio("Channel", channels, horizontal=True, key="report_channel")
    figures = [figure for figure in shown.figures if figure.channel == channel]
    _table(figures)
    st.altair_chart(_bars(figures), width="stretch")
    times = [row for row in shown.times if channel in {ALL_CHANNELS, row["channel"]}]
    st.altair_chart(_spread(times), width="stretch")


def _table(figures: list[Figure]) -> None:
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in table_rows(figures)]
    st.dataframe(rows, hide_index=True, height=ROW_PX * (len(rows) + 1) + 3)
    if any(figure.warning for figure in figures):
        st.warning(
            f"Users marked “!”: fewer than {MIN_USERS} in the arm or the control, "
            "too few to say anything."
        )
    st.caption(
        "Each user counts once: a user's own rate, mean or median first, then the arm's. "
        "Intervals are 95%; p compares the arm with the control (see the README)."
    )


def _bars(figures: list[Figure]) -> alt.FacetChart:
    """Each outcome's arms as bars, with the arm's 95% interval and its number of users."""
    rows = [
        {
            "outcome": _title(figure),
            "arm": f"{figure.arm} n={figure.users}",
            "control": "control" if figure.control else "arm",
            "value": _scaled(figure.value, figure.unit),
            "low": _scaled(figure.low, figure.unit),
            "high": _scaled(figure.high, figure.unit),
        }
        for figure in figures
        if figure.value is not None
    ]
    # Each arm's name over its number of users, on two lines.
    axis = alt.Axis(labelAngle=0, labelExpr="split(datum.label, ' ')", labelFontSize=11)
    base = alt.Chart().encode(x=alt.X("arm:N", title=None, sort=None, axis=axis))
    colours = alt.Scale(domain=["control", "arm"], range=["#9a9a9a", "#4c78a8"])
    bar = base.mark_bar().encode(
        y=alt.Y("value:Q", title=None), color=alt.Color("control:N", legend=None, scale=colours)
    )
    error = base.mark_errorbar(ticks=True, color="#222").encode(y="low:Q", y2="high:Q")
    order = list(dict.fromkeys(_title(figure) for figure in figures))
    chart: alt.FacetChart = (
        alt.layer(bar, error, data={"values": rows})
        .properties(width=200, height=140)
        .facet(facet=alt.Facet("outcome:N", title=None, sort=order), columns=3)
        .resolve_scale(y="independent", x="independent")
        .properties(title="Per arm (grey: the control), with 95% intervals and users")
    )
    return chart


def _title(figure: Figure) -> str:
    return figure.label + (f" ({figure.unit})" if figure.unit else "")


def _scaled(value: float | None, unit: str) -> float | None:
    return value * 100 if value is not None and unit == "%" else value


def _spread(times: list[dict[str, Any]]) -> alt.LayerChart:
    """The users' median times to a first message, arm by arm: a box and every user."""
    base = alt.Chart({"values": times}).encode(
        y=alt.Y("arm:N", title=None, sort=None),
        x=alt.X("seconds:Q", title="a user's median time to the first message (s)"),
    )
    box = base.mark_boxplot(extent="min-max", size=22, opacity=0.5)
    users = base.mark_tick(thickness=1, size=14, color="#333")
    return alt.LayerChart(
        layer=[box, users], height=alt.Step(36), title="Time to first message, per user, by arm"
    )
