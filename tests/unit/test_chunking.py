from __future__ import annotations

import regex  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from sprout.core.chunking import Chunk, Chunker, chunk_markdown, split_rendered
from sprout.core.formatting import to_telegram_html, to_web_markdown, to_whatsapp
from sprout.core.messages import ChannelSpec, Rendered, utf16_len
from sprout.core.specs import TELEGRAM, TELEGRAM_STREAMING, WEB, WHATSAPP
from tests.unit.test_formatting import html_problems

FAST = settings(max_examples=200, deadline=None)
TAG = regex.compile(r"<[^<>]*>")

# --- random answers: paragraphs, lists, headings; bold, italic, links, emoji, long words ---

SHORT = st.sampled_from(
    [
        "the",
        "child",
        "plays",
        "with",
        "sand",
        "naïve",
        "cafe\u0301",
        "😀",
        "👨‍👩‍👧‍👦",
        "🇬🇧",
        "🇫🇷🇩🇪",
        "👍🏽",
    ]
)
LONG = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "ab", "😀", "👨‍👩‍👧", "🇬🇧", "e\u0301"]),
    st.integers(20, 60),
)
PHRASE = st.lists(SHORT, min_size=1, max_size=3).map(" ".join)
INLINE = st.one_of(
    SHORT,
    SHORT,
    LONG,
    PHRASE.map(lambda p: f"**{p}**"),
    PHRASE.map(lambda p: f"_{p}_"),
    PHRASE.map(lambda p: f"~~{p}~~"),
    st.sampled_from(["one", "two"]).map(lambda p: f"`{p}`"),
    st.builds(
        lambda p, path: f"[{p}](https://ex.com/{path})", PHRASE, st.sampled_from(["a", "b/c"])
    ),
)
SENTENCE = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(INLINE, min_size=1, max_size=10),
    st.sampled_from([".", "!", "?", "…", "", ","]),
)
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=4).map(" ".join)
ITEMS = st.lists(PHRASE, min_size=1, max_size=4)
BLOCK = st.one_of(
    PARAGRAPH,
    PARAGRAPH,
    PHRASE.map(lambda p: f"## {p}"),
    ITEMS.map(lambda items: "\n".join(f"- {i}" for i in items)),
    st.builds(lambda a, b: f"- {a}\n  - {b}\n- {a}", PHRASE, PHRASE),
    st.builds(
        lambda n, items: "\n".join(f"{n + k}. {i}" for k, i in enumerate(items)),
        st.integers(1, 12),
        ITEMS,
    ),
    PHRASE.map(lambda p: f"> {p}"),
)
ANSWER = st.lists(BLOCK, min_size=1, max_size=20).map("\n\n".join)
# Spans long enough that only closing and reopening them can cut them small.
LONG_SPAN = st.builds(lambda s, m: f"{m}{s}{m}", SENTENCE, st.sampled_from(["**", "_"]))
ANSWER_WITH_LONG_SPANS = st.lists(st.one_of(PARAGRAPH, LONG_SPAN), min_size=1, max_size=5).map(
    "\n\n".join
)


def small(spec: ChannelSpec, max_len: int) -> ChannelSpec:
    return ChannelSpec(spec.name, max_len, spec.measure, spec.render)


def squeeze(text: str) -> str:
    return "".join(text.split())


def clusters(texts: list[str]) -> list[str]:
    return [g for t in texts for g in regex.findall(r"\X", squeeze(t))]


def whatsapp_problems(text: str) -> list[str]:
    stack: list[str] = []
    for marker in regex.findall(r"```|[*_~]", text):
        if stack and stack[-1] == marker:
            stack.pop()
        else:
            stack.append(marker)
    return stack


def problems(spec: ChannelSpec, text: str) -> list[str]:
    return html_problems(text) if spec.render is to_telegram_html else whatsapp_problems(text)


def unmarked(spec: ChannelSpec, text: str) -> str:
    if spec.render is to_telegram_html:
        return TAG.sub("", text)
    return regex.sub(r"```|[*_~]", "", text)


def check_chunks(spec: ChannelSpec, chunks: list[Chunk]) -> None:
    assert spec.max_len is not None
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text != ""
        assert spec.measure(chunk.text) <= spec.max_len
        assert problems(spec, chunk.text) == []


# --- the properties ---


@FAST
@given(
    ANSWER, st.sampled_from([(WHATSAPP, 50), (WHATSAPP, 1600), (TELEGRAM, 80), (TELEGRAM, 4096)])
)
def test_chunks_fit_keep_everything_and_cut_only_whitespace(
    markdown: str, spec_limit: tuple[ChannelSpec, int]
) -> None:
    spec = small(*spec_limit)
    chunks = chunk_markdown(markdown, spec)
    check_chunks(spec, chunks)
    whole = spec.render(markdown).text
    assert squeeze("".join(c.text for c in chunks)) == squeeze(whole)
    # A cut inside a grapheme cluster would show up as a different cluster sequence.
    assert clusters([c.text for c in chunks]) == clusters([whole])


@FAST
@given(ANSWER_WITH_LONG_SPANS, st.sampled_from([(WHATSAPP, 30), (WHATSAPP, 50), (TELEGRAM, 60)]))
def test_long_spans_are_closed_and_reopened(
    markdown: str, spec_limit: tuple[ChannelSpec, int]
) -> None:
    spec = small(*spec_limit)
    chunks = chunk_markdown(markdown, spec)
    check_chunks(spec, chunks)
    texts = [unmarked(spec, c.text) for c in chunks]
    whole = unmarked(spec, spec.render(markdown).text)
    assert squeeze("".join(texts)) == squeeze(whole)
    assert clusters(texts) == clusters([whole])


# Lines that change how the lines before them parse (setext underlines, lazy continuation,
# fences, loose lists, tables): streaming must never call a block complete too early.
TRICKY_LINES = st.sampled_from(
    [
        "Some text here.",
        "- item",
        "* other",
        "1. one",
        "2. two",
        "10) ten",
        "  indented",
        "    code",
        "```",
        "~~~",
        "---",
        "===",
        "***",
        "* * *",
        "> quote",
        "lazy line",
        "| a | b |",
        "|---|---|",
        "# Heading",
        "<div>",
        "</div>",
        "<!-- c -->",
        "[r]: https://e.com",
        "[r] link",
        "**bold",
        "start** end",
        "\\",
        "  - nested",
        "",
        "",
    ]
)
TRICKY = st.lists(TRICKY_LINES, min_size=1, max_size=30).map("\n".join)


def stream(chunker: Chunker, markdown: str, sizes: list[int]) -> list[Chunk]:
    out: list[Chunk] = []
    at, k = 0, 0
    while at < len(markdown):
        size = sizes[k % len(sizes)]
        out += chunker.feed(markdown[at : at + size])
        at, k = at + size, k + 1
    return out + chunker.finish()


@FAST
@given(
    st.one_of(ANSWER, TRICKY),
    st.lists(st.integers(1, 60), min_size=1, max_size=20),
    st.sampled_from([(WHATSAPP, 50), (WHATSAPP, 1600), (TELEGRAM, 200), (WEB, None)]),
)
def test_streaming_in_any_pieces_gives_the_same_chunks(
    markdown: str, sizes: list[int], spec_limit: tuple[ChannelSpec, int | None]
) -> None:
    base, limit = spec_limit
    spec = ChannelSpec(base.name, limit, base.measure, base.render)
    streamed = stream(Chunker(spec, first_min=40, min_len=120), markdown, sizes)
    whole = Chunker(spec, first_min=40, min_len=120)
    assert streamed == whole.feed(markdown) + whole.finish()
    # Sources are the answer's own blocks, in order, or the piece sent of a block cut up.
    at = 0
    for chunk in streamed:
        if chunk.source != chunk.text:
            at = markdown.index(chunk.source, at) + len(chunk.source)


@FAST
@given(st.one_of(TRICKY, st.text(max_size=300)), st.sampled_from([(WHATSAPP, 40), (TELEGRAM, 90)]))
def test_any_markdown_chunks_fit_and_stay_balanced(
    markdown: str, spec_limit: tuple[ChannelSpec, int]
) -> None:
    spec = small(*spec_limit)
    chunks = chunk_markdown(markdown, spec)
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text != ""
        assert spec.measure(chunk.text) <= spec_limit[1]
    if spec.render is to_telegram_html:
        assert all(html_problems(c.text) == [] for c in chunks)


def test_first_chunk_is_ready_before_the_stream_ends() -> None:
    para = "a playful sentence about sand. " * 6
    answer = "\n\n".join(f"Paragraph {i}: {para}" for i in range(9))
    chunker = Chunker(WHATSAPP)
    early: list[Chunk] = []
    for at in range(0, len(answer), 4):  # token-sized deltas
        early += chunker.feed(answer[at : at + 4])
        if early:
            break
    assert early
    assert at < len(answer) // 4
    assert 200 <= utf16_len(early[0].text) <= 1600


@FAST
@given(st.text(min_size=1, max_size=400), st.integers(1, 60))
def test_split_any_text(text: str, max_len: int) -> None:
    pieces = split_rendered(to_whatsapp(text), max_len, utf16_len)
    assert all(p and p.strip() == p for p in pieces)
    assert all(utf16_len(p) <= max_len or len(regex.findall(r"\X", p)) == 1 for p in pieces)


# --- examples ---


def test_split_prefers_paragraph_then_sentence_then_word() -> None:
    rendered = to_whatsapp("Aaa bbb.\n\nCcc ddd. Eee fff ggg. Hhh iii")
    assert split_rendered(rendered, 30, len) == ["Aaa bbb.", "Ccc ddd. Eee fff ggg. Hhh iii"]
    assert split_rendered(rendered, 22, len) == ["Aaa bbb.", "Ccc ddd. Eee fff ggg.", "Hhh iii"]
    pieces = split_rendered(rendered, 11, len)
    assert pieces == ["Aaa bbb.", "Ccc ddd.", "Eee fff", "ggg.", "Hhh iii"]


def test_split_closes_and_reopens_long_pairs() -> None:
    rendered = to_whatsapp("Go **very long bold words here** now")
    assert split_rendered(rendered, 16, len) == ["Go", "*very long bold*", "*words here* now"]
    html = to_telegram_html("<b>x</b> [link text here](https://e.com)")
    assert split_rendered(html, 40, len) == [
        "&lt;b&gt;x&lt;/b&gt;",
        '<a href="https://e.com">link text</a>',
        '<a href="https://e.com">here</a>',
    ]


def test_split_cuts_a_long_word_between_graphemes() -> None:
    family = "👨‍👩‍👧‍👦"
    pieces = split_rendered(Rendered(family * 3, {}), 25, utf16_len)
    assert pieces == [family * 2, family]
    assert split_rendered(Rendered("🇬🇧🇫🇷", {}), 2, utf16_len) == ["🇬🇧", "🇫🇷"]


def test_chunker_packs_blocks_and_keeps_list_numbers() -> None:
    spec = small(WHATSAPP, 40)
    md = "Intro line.\n\n3. three three three three\n4. four four four four\n5. five"
    chunks = chunk_markdown(md, spec)
    assert [c.text for c in chunks] == [
        "Intro line.",
        "3. three three three three",
        "4. four four four four\n5. five",
    ]
    # The list is cut: its pieces stand for themselves when asking the model to continue.
    assert [c.source for c in chunks] == [c.text for c in chunks]


def test_chunker_sends_early_then_fuller() -> None:
    para = "Sentence number one is here. " * 4  # ~116 chars
    chunks = chunk_markdown("\n\n".join([para] * 12), WHATSAPP)
    sizes = [utf16_len(c.text) for c in chunks]
    assert 200 <= sizes[0] < 400
    assert all(700 <= s <= 1600 for s in sizes[1:-1])


def test_heading_goes_with_the_next_block() -> None:
    spec = small(WHATSAPP, 40)
    chunks = chunk_markdown("Some text here that is long.\n\n# Title\n\nBody text.", spec)
    assert [c.text for c in chunks] == ["Some text here that is long.", "*Title*\n\nBody text."]


def test_code_fence_with_blank_lines_stays_whole() -> None:
    chunker = Chunker(TELEGRAM, first_min=1)
    assert chunker.feed("```\nline 1\n\n") == []
    assert chunker.feed("line 2\n```\n\n") == []
    [chunk] = chunker.feed("After.\n")
    assert chunk.text == "<pre>line 1\n\nline 2</pre>"
    assert chunk.source == "```\nline 1\n\nline 2\n```"


def test_web_sends_every_block_as_it_completes() -> None:
    chunker = Chunker(WEB)
    assert chunker.feed("# Hi\n\nFirst para") == []
    assert chunker.feed(".\n\n- a\n") == [Chunk("# Hi\n\nFirst para.", "# Hi\n\nFirst para.")]
    assert chunker.finish() == [Chunk("- a", "- a")]
    assert to_web_markdown("- a").text == "- a"


def test_crlf_split_across_deltas() -> None:
    chunker = Chunker(small(WHATSAPP, 100), first_min=1)
    out = chunker.feed("One.\r") + chunker.feed("\n\r\nTwo.\r\n") + chunker.finish()
    assert [c.text for c in out] == ["One.", "Two."]


# --- pieces below the top-level block: items, rows, sentences ---

IDEAS = "Here are some dinosaur activities to try together at home:\n\n" + "\n\n".join(
    f"{n}. **Idea {n}**: Bury toy dinosaurs in a tray of sand and let your child dig them "
    f"out. Talk about the shapes you find.\n   Areas: Physical Development"
    for n in range(1, 11)
)


def streamed_with_times(spec: ChannelSpec, markdown: str, size: int) -> list[tuple[int, Chunk]]:
    """Each chunk with how much of the answer had arrived when it was ready."""
    chunker = Chunker(spec)
    out: list[tuple[int, Chunk]] = []
    for at in range(0, len(markdown), size):
        out += [(at + size, c) for c in chunker.feed(markdown[at : at + size])]
    return out + [(len(markdown) + 1, c) for c in chunker.finish()]


def joined(chunks: list[Chunk]) -> str:
    return chunks[0].text + "".join(c.joint + c.text for c in chunks[1:]) if chunks else ""


def test_a_list_streamed_to_whatsapp_sends_its_first_message_early() -> None:
    [(ready_at, first), *rest] = streamed_with_times(WHATSAPP, IDEAS, 5)
    assert ready_at < IDEAS.index("3. **Idea 3**"), "the first message waits for the list"
    assert first.text.startswith("Here are some") and first.text.endswith("Physical Development")
    assert 200 <= utf16_len(first.text) <= 400
    assert rest, "later ideas follow in later messages"


def test_telegram_grows_with_each_sentence_and_item() -> None:
    answer = IDEAS[: IDEAS.index("3. **Idea 3**")].rstrip()
    seen = streamed_with_times(TELEGRAM_STREAMING, answer, 4)
    texts = [chunk.text for _, chunk in seen]
    assert texts[:4] == [
        "Here are some dinosaur activities to try together at home:",
        "1. <b>Idea 1</b>: Bury toy dinosaurs in a tray of sand and let your child dig them out.",
        "Talk about the shapes you find.",
        "Areas: Physical Development",
    ]
    assert [at for at, _ in seen] == sorted(at for at, _ in seen)
    # A sentence goes as soon as the next one starts.
    assert seen[1][0] <= answer.index("Talk about") + 4
    # Shown in one growing message, joined by their joints, they are the whole answer.
    assert joined([chunk for _, chunk in seen]) == to_telegram_html(answer).text


def test_a_list_cut_across_messages_keeps_its_numbers() -> None:
    # The model numbered every item "1."; the messages count on from one another.
    answer = "\n".join(f"1. Item number {n} has a few words in it." for n in range(1, 10))
    chunks = chunk_markdown(answer, small(WHATSAPP, 120))
    assert len(chunks) > 2
    numbers = [int(line.split(".")[0]) for c in chunks for line in c.text.split("\n")]
    assert numbers == list(range(1, 10))
    assert chunks[1].text.startswith("4. Item number 4")


def test_a_nested_list_is_cut_between_its_items() -> None:
    answer = "- Dig\n  - a tray\n  - some sand\n- Paint\n  - brushes\n  - paper"
    chunks = chunk_markdown(answer, TELEGRAM_STREAMING)
    assert [c.text for c in chunks] == [
        "• Dig",
        "• a tray",
        "• some sand",
        "• Paint",
        "• brushes",
        "• paper",
    ]
    assert joined(chunks) == to_telegram_html(answer).text
    assert chunks[1].joint == "\n  "


def test_a_table_cut_across_messages_repeats_its_header() -> None:
    rows = [f"| Day {n} | Dig in the sand |" for n in range(6)]
    answer = "| Day | Idea |\n|---|---|\n" + "\n".join(rows)
    chunks = chunk_markdown(answer, small(WHATSAPP, 60))
    assert len(chunks) > 1
    assert all(c.text.startswith("*Day* | *Idea*\n") for c in chunks)
    shown = [line for c in chunks for line in c.text.split("\n")[1:]]
    assert shown == [f"Day {n} | Dig in the sand" for n in range(6)]
    # One message that grows shows its header once.
    growing = chunk_markdown(answer, TELEGRAM_STREAMING)
    assert joined(growing) == to_telegram_html(answer).text


def test_bullet_dots_are_list_items_and_the_source_keeps_them() -> None:
    answer = "Try these:\n• Dig for dinosaurs\n• Paint footprints\n• Sort them by size"
    chunks = chunk_markdown(answer, TELEGRAM_STREAMING)
    assert [c.text for c in chunks] == [
        "Try these:",
        "• Dig for dinosaurs",
        "• Paint footprints",
        "• Sort them by size",
    ]
    assert [c.source for c in chunks] == [
        "Try these:",
        "• Dig for dinosaurs",
        "• Paint footprints",
        "• Sort them by size",
    ]


def test_a_sentence_ends_a_piece_only_where_no_pair_is_open() -> None:
    answer = "Try this: **dig in the sand. Then paint** what you find. Enjoy it together."
    chunks = [chunk for _, chunk in streamed_with_times(TELEGRAM_STREAMING, answer, 3)]
    assert [c.text for c in chunks] == [
        "Try this: <b>dig in the sand. Then paint</b> what you find.",
        "Enjoy it together.",
    ]


def test_a_heading_goes_with_the_first_item_after_it() -> None:
    answer = "Intro.\n\n### Outdoors\n1. Dig in the sand.\n2. Collect leaves."
    chunks = chunk_markdown(answer, TELEGRAM_STREAMING)
    assert [c.text for c in chunks] == [
        "Intro.",
        "<b>Outdoors</b>\n\n1. Dig in the sand.",
        "2. Collect leaves.",
    ]
