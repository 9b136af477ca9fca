from __future__ import annotations

import regex  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from sprout.core.chunking import Chunk, Chunker, chunk_markdown, split_rendered
from sprout.core.formatting import to_telegram_html, to_web_markdown, to_whatsapp
from sprout.core.messages import ChannelSpec, Rendered, utf16_len
from sprout.core.specs import TELEGRAM, WEB, WHATSAPP
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
