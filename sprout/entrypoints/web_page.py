"""Sprout's research web page (`sprout web` runs `streamlit run` on this file).

A chat with the same core as the messaging channels, a side-by-side view of how the latest
answer looks and arrives on the web, WhatsApp and Telegram, an export of the session, and the
experiments' report.
"""

from __future__ import annotations

import secrets
from typing import Any

import streamlit as st

from sprout.channels.web.compare import (
    Rendering,
    WebTurn,
    bubbles_html,
    export_csv,
    export_json,
    export_rows,
    hard_breaks,
    stream_hard_breaks,
    telegram_rendering,
    timeline_rows,
    web_rendering,
    whatsapp_rendering,
)
from sprout.core.llm import DEMO_BANNER
from sprout.core.profile import EYFS_AREAS, LANGUAGE_NAMES, Child, Profile
from sprout.core.settings import Settings
from sprout.entrypoints.experiments_tab import experiments_tab
from sprout.entrypoints.web_core import WebCore
from sprout.export import PROGRAMME_FIELDS, export_programme, to_csv

PLACES = {"": "not set", "indoors": "indoors", "outdoors": "outdoors", "both": "both"}
LANGUAGES = {"": "not set", **LANGUAGE_NAMES}
LABELS = {"web": "Web", "whatsapp": "WhatsApp", "telegram": "Telegram"}
CSS = """<style>
.sprout-phone {background:#efeae2;border-radius:18px;padding:12px;border:6px solid #222;
  max-width:380px;max-height:520px;overflow-y:auto;font-family:system-ui,sans-serif;font-size:14px}
.sprout-bubble {background:#d9fdd3;border-radius:8px;padding:6px 8px 16px 8px;margin:6px 0;
  position:relative;white-space:normal;word-wrap:break-word;color:#111}
.sprout-telegram {background:#c8d9e8} .sprout-telegram .sprout-bubble {background:#effdde}
.sprout-hold {background:#fff3c4}
.sprout-time {position:absolute;right:8px;bottom:2px;font-size:10px;color:#667}
.sprout-quick {margin:-2px 0 6px 0} .sprout-reply {background:#fff;border-radius:8px;
  margin:3px 0;padding:7px;text-align:center;color:#027eb5;font-weight:500}
.sprout-keyboard {display:flex;gap:4px;margin:-2px 0 6px 0}
.sprout-key {flex:1;background:rgba(0,0,0,.25);color:#fff;border-radius:8px;padding:6px;
  text-align:center}
</style>"""


@st.cache_resource(show_spinner=False, on_release=WebCore.close)
def _core(database_url: str, model_url: str | None, model: str) -> WebCore:
    """One core per page server; the arguments only key the cache (a test changing them gets
    its own)."""
    return WebCore(Settings())


def _sidebar(core: WebCore, user_id: str) -> None:
    st.sidebar.header("Profile")
    st.sidebar.caption(f"Model: {core.model.name}")
    profile = core.profile(user_id)
    child = profile.children[0] if profile.children else None
    months = child.age_months if child else 0
    with st.sidebar.form("profile"):
        years_in = st.number_input("Child's age: years", 0, 12, months // 12, key="age_years")
        months_in = st.number_input("and months", 0, 11, months % 12, key="age_months")
        place = st.selectbox(
            "Places", list(PLACES), list(PLACES).index(profile.places or ""),
            format_func=PLACES.__getitem__, key="places",
        )  # fmt: skip
        areas = st.multiselect(
            "Areas of learning", list(EYFS_AREAS), [a for a in profile.areas if a in EYFS_AREAS],
            key="areas",
        )  # fmt: skip
        language = st.selectbox(
            "Language", list(LANGUAGES), _index(list(LANGUAGES), profile.language or ""),
            format_func=LANGUAGES.__getitem__, key="language",
        )  # fmt: skip
        if st.form_submit_button("Save profile"):
            total = int(years_in) * 12 + int(months_in)
            others = profile.children[1:]
            name = child.name if child else None
            children = ([Child(age_months=total, name=name)] if total else []) + others
            core.save_profile(
                user_id,
                Profile(
                    children=children,
                    places=place or None,
                    areas=areas,
                    language=language or None,
                ),
            )
            st.sidebar.success("Profile saved")


def _index(options: list[str], value: str) -> int:
    return options.index(value) if value in options else 0


def _chat(core: WebCore, user_id: str, turns: list[WebTurn]) -> None:
    """The conversation, the last answer's buttons under it, and the answer to what was just
    asked: a question typed, or a button tapped (its label and payload, as on WhatsApp)."""
    under_last = None
    for turn in turns:
        with st.chat_message("user"):
            st.markdown(turn.user_text)
        with st.chat_message("assistant"):
            st.markdown(hard_breaks(turn.answer_text))
            st.caption(_timing(turn))
            under_last = st.empty()
    question = st.chat_input("Ask Sprout, e.g. “explain why the sky is blue”")
    tapped: tuple[str, str] | None = st.session_state.pop("tapped", None)
    asked = (question, "") if question else tapped
    if asked is None:
        if under_last is not None:
            with under_last.container():
                _buttons(turns[-1], len(turns))
        return
    text, payload = asked
    with st.chat_message("user"):
        st.markdown(text)
    with st.chat_message("assistant"):
        answer = core.ask(user_id, text, payload)
        st.write_stream(stream_hard_breaks(answer))
        st.caption(_timing(answer.turn))
        turns.append(answer.turn)
        _buttons(answer.turn, len(turns))


def _buttons(turn: WebTurn, number: int) -> None:
    """The tap-to-reply buttons under answer `number`, as the messaging channels show them
    (none under fixed texts, safeguarding help or apologies: the core sends none)."""
    if turn.buttons is None:
        return
    row = st.container(horizontal=True)
    for button in turn.buttons.options:
        row.button(
            button.label,
            key=f"tap-{number}-{button.payload}",
            on_click=_tap,
            args=(button.label, button.payload),
        )


def _tap(label: str, payload: str) -> None:
    """A button was tapped: the next run sends its label with its payload."""
    st.session_state.tapped = (label, payload)


def _timing(turn: WebTurn) -> str:
    first = f"{turn.first_chunk_s:.2f} s" if turn.first_chunk_s is not None else "—"
    done = f"{turn.complete_s:.2f} s" if turn.complete_s is not None else "—"
    return f"first text {first} · complete {done} · {len(turn.arrivals)} chunks"


def _compare(core: WebCore, user_id: str, turns: list[WebTurn]) -> None:
    if not turns:
        st.info("Ask a question in the Chat tab: its answer is compared here.")
        return
    turn = turns[-1]
    hold = core.hold_text(core.profile(user_id).language)
    renderings = [
        web_rendering(turn),
        whatsapp_rendering(turn, core.settings.hold_after_s, hold),
        telegram_rendering(turn),
    ]
    st.caption(f"Latest question: {turn.user_text[:120]}")
    for column, rendering in zip(st.columns(3), renderings, strict=True):
        with column:
            _show(rendering)


def _show(rendering: Rendering) -> None:
    st.subheader(LABELS[rendering.channel])
    if rendering.channel == "web":
        with st.container(border=True, height=520):
            st.markdown(hard_breaks(rendering.messages[0] if rendering.messages else ""))
    elif rendering.channel == "whatsapp":
        st.markdown(bubbles_html(rendering, "sprout-whatsapp"), unsafe_allow_html=True)
    else:
        html = bubbles_html(rendering, "sprout-telegram", strip_tags=True)
        st.markdown(html, unsafe_allow_html=True)
    table = "| figure | value |\n|---|---|\n" + "\n".join(
        f"| {name} | {value} |" for name, value in rendering.figures().items()
    )
    st.markdown(table)
    st.vega_lite_chart(_chart(rendering), height=140)


def _chart(rendering: Rendering) -> dict[str, Any]:
    """When each piece becomes visible (x) and how much text it shows (y)."""
    return {
        "data": {"values": timeline_rows(rendering)},
        "mark": {"type": "bar", "width": 6},
        "encoding": {
            "x": {"field": "seconds", "type": "quantitative", "title": "seconds after asking"},
            "y": {"field": "characters", "type": "quantitative", "title": "characters"},
            "color": {"field": "hold", "type": "nominal", "legend": None},
        },
    }


def _export(core: WebCore, user_id: str, turns: list[WebTurn]) -> None:
    _programme(core)
    st.subheader("This session")
    if not turns:
        st.info("Nothing to export yet.")
        return
    if core.no_research(user_id):
        st.info("This session said *no research*: it is left out of exports.")
        return
    ratings = core.ratings(user_id)
    st.dataframe(export_rows(turns, ratings), hide_index=True)
    left, right = st.columns(2)
    csv = export_csv(turns, ratings)
    left.download_button("Download CSV", csv, "sprout-session.csv", "text/csv")
    right.download_button(
        "Download JSON", export_json(turns, ratings), "sprout-session.json", "application/json"
    )


def _programme(core: WebCore) -> None:
    """Every family's regular ideas and check-ins, as `sprout export --programme` has them
    (pseudonymised, no message words): for researchers reading the programme's reach."""
    st.subheader("Regular ideas and check-ins (all families)")
    rows = core.call(export_programme(core.store))
    if not rows:
        st.info("No regular ideas or check-ins yet.")
        return
    st.dataframe(rows, hide_index=True)
    csv = to_csv(rows, PROGRAMME_FIELDS)
    st.download_button("Download programme CSV", csv, "sprout-programme.csv", "text/csv")


def main() -> None:
    st.set_page_config(page_title="Sprout research page", page_icon="🌱", layout="wide")
    settings = Settings()
    core = _core(settings.sqlalchemy_url, settings.openai_base_url, settings.model)
    if "session_id" not in st.session_state:
        # A random id per browser session: no name, number or account behind the web user.
        st.session_state.session_id = secrets.token_hex(8)
        st.session_state.turns = []
    user_id = f"web:{st.session_state.session_id}"
    turns: list[WebTurn] = st.session_state.turns
    st.markdown(CSS, unsafe_allow_html=True)
    st.title("🌱 Sprout")
    if settings.demo_mode:
        st.warning(DEMO_BANNER)
    _sidebar(core, user_id)
    tabs = st.tabs(["Chat", "Compare channels", "Export", "Experiments"])
    chat, compare, export, experiments = tabs
    with chat:
        _chat(core, user_id, turns)
    with compare:
        _compare(core, user_id, turns)
    with export:
        _export(core, user_id, turns)
    with experiments:
        experiments_tab(core, settings)


main()
