from __future__ import annotations

from html.parser import HTMLParser

import regex  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from sprout.core.formatting import Formatted, to_telegram_html, to_web_markdown, to_whatsapp
from sprout.core.messages import Rendered
from sprout.core.specs import TELEGRAM, WEB, WHATSAPP

TELEGRAM_TAGS = {"b", "i", "s", "code", "pre", "a", "blockquote"}


class _TagStack(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(f"tag {tag}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced {tag}")


def html_problems(text: str) -> list[str]:
    parser = _TagStack()
    parser.feed(text)
    parser.close()
    return parser.problems + [f"unclosed {t}" for t in parser.stack]


def cut_at(rendered: Rendered, offset: int) -> str:
    return rendered.text[:offset] + "|" + rendered.text[offset:]


def test_headings_become_bold_lines() -> None:
    assert to_whatsapp("# Title\n\nText").text == "*Title*\n\nText"
    assert to_telegram_html("## Title\nText").text == "<b>Title</b>\n\nText"


def test_emphasis_pairs() -> None:
    md = "**bold** and _it_ and *it* and ~~gone~~ and ***both***"
    assert to_whatsapp(md).text == "*bold* and _it_ and _it_ and ~gone~ and _*both*_"
    assert to_telegram_html(md).text == (
        "<b>bold</b> and <i>it</i> and <i>it</i> and <s>gone</s> and <i><b>both</b></i>"
    )


def test_whatsapp_markers_hug_the_text_and_empty_pairs_go() -> None:
    assert to_whatsapp("**![](a.png) tip**").text == "*tip*"
    assert to_whatsapp("x **![](a.png)** y").text == "x  y"
    assert to_whatsapp("**[ x](https://e.com)** y").text == "*x (https://e.com)* y"
    # Bold inside a bold heading would close it early in WhatsApp.
    assert to_whatsapp("# A **b** c").text == "*A b c*"


def test_no_markdown_markers_left_in_whatsapp() -> None:
    md = "**bold ** text __x__ and ##Title and ~~ and **unclosed"
    text = to_whatsapp(md).text
    for marker in ("**", "__", "##", "~~"):
        assert marker not in text


def test_nested_lists_indent_and_keep_numbers() -> None:
    md = "- one\n- two\n  - sub a\n  - sub b\n\n    more b\n- three\n\n3. c\n4. d\n"
    assert to_whatsapp(md).text == (
        "• one\n• two\n  • sub a\n  • sub b\n    more b\n• three\n\n3. c\n4. d"
    )
    assert to_telegram_html("10. ten\n11. **eleven**").text == "10. ten\n11. <b>eleven</b>"


def test_links() -> None:
    assert to_whatsapp("See [the guide](https://e.com/a?b=1&c=2).").text == (
        "See the guide (https://e.com/a?b=1&c=2)."
    )
    assert to_whatsapp("<https://e.com/x> and [https://e.com](https://e.com)").text == (
        "https://e.com/x and https://e.com"
    )
    assert to_telegram_html('[a "q"](https://e.com/?a=1&b="2")').text == (
        '<a href="https://e.com/?a=1&amp;b=%222%22">a "q"</a>'
    )


def test_code() -> None:
    md = "Use `print(1 < 2)` here.\n\n```python\nif a < b:\n    pass\n```"
    assert to_whatsapp(md).text == "Use `print(1 < 2)` here.\n\n```if a < b:\n    pass```"
    assert to_telegram_html(md).text == (
        "Use <code>print(1 &lt; 2)</code> here.\n\n"
        '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>'
    )


def test_telegram_escapes_everything() -> None:
    text = to_telegram_html("<script>alert('x')</script> & Tom > Jerry\n\n<div>\nhi\n</div>").text
    assert text == (
        "&lt;script&gt;alert('x')&lt;/script&gt; &amp; Tom &gt; Jerry\n\n"
        "&lt;div&gt;\nhi\n&lt;/div&gt;"
    )
    assert html_problems(text) == []


def test_blockquote_images_rules() -> None:
    md = "> quoted\n> line\n>\n> again\n\n![a *cat*](c.png)\n\n---\n\nend"
    assert to_whatsapp(md).text == "> quoted\n> line\n>\n> again\n\na cat\n\n———\n\nend"
    assert to_telegram_html("> quoted **b**").text == "<blockquote>quoted <b>b</b></blockquote>"


def test_web_markdown_is_the_source_tidied() -> None:
    md = "# T\r\n\r\n\r\n\r\nSome **bold**.  \nnext\n\n\n- a\n- b\n\n[r]: https://e.com\n"
    rendered = to_web_markdown(md)
    assert rendered.text == "# T\n\nSome **bold**.  \nnext\n\n- a\n- b\n\n[r]: https://e.com"
    assert set(rendered.breaks.values()) == {3}


def test_breaks_by_strength_and_never_inside_pairs() -> None:
    rendered = to_whatsapp("One. Two **bold words** [a link](https://e.com) end\n\nNext")
    marks = {cut_at(rendered, at): strength for at, strength in rendered.breaks.items()}
    text = rendered.text
    assert text == "One. Two *bold words* a link (https://e.com) end\n\nNext"
    assert rendered.breaks[text.index("Two")] == 2
    assert rendered.breaks[text.index("*bold")] == 1
    assert rendered.breaks[text.index("Next")] == 3
    assert text.index("words") not in rendered.breaks, marks
    assert text.index("link") not in rendered.breaks
    assert text.index("(https") not in rendered.breaks


def test_breaks_skip_grapheme_interiors() -> None:
    rendered = to_whatsapp("a \u0301b c")  # the combining accent joins the space before it
    assert rendered.breaks == {5: 1}


def test_a_heading_break_is_weaker_than_a_paragraph_break() -> None:
    rendered = to_whatsapp("Intro.\n\n# Head\n\nBody")
    text = rendered.text
    assert rendered.breaks[text.index("*Head")] == 3
    assert rendered.breaks[text.index("Body")] == 2


def test_specs() -> None:
    assert (WHATSAPP.max_len, TELEGRAM.max_len, WEB.max_len) == (1600, 4096, None)
    assert WHATSAPP.measure("👍") == 2
    assert isinstance(WHATSAPP.render("x"), Formatted)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_renders_to_balanced_telegram_html(markdown: str) -> None:
    rendered = to_telegram_html(markdown)
    assert html_problems(rendered.text) == []
    bounds = {m.start() for m in regex.finditer(r"\X", rendered.text)}
    assert set(rendered.breaks) <= bounds
    assert all(0 < at < len(rendered.text) for at in rendered.breaks)


MD_PIECES = st.sampled_from(
    [
        "**",
        "*",
        "_",
        "__",
        "~~",
        "`",
        "[",
        "](https://e.com)",
        "<",
        ">",
        "&",
        "# ",
        "- ",
        "1. ",
        "> ",
        "\n",
        "\n\n",
        " ",
        "word",
        "👨‍👩‍👧",
        "🇬🇧",
        "```\n",
        "\\",
        "![",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MD_PIECES, max_size=40).map("".join))
def test_markdownish_soup_never_leaks_double_markers_or_bad_html(markdown: str) -> None:
    assert html_problems(to_telegram_html(markdown).text) == []
    whatsapp = to_whatsapp(markdown)
    assert isinstance(whatsapp, Formatted)
    outside_code = whatsapp.text
    for span in reversed(whatsapp.spans):  # code keeps whatever it holds
        if span.opener in ("`", "```"):
            outside_code = outside_code[: span.start] + " " + outside_code[span.end :]
    assert "**" not in outside_code
    for at in whatsapp.breaks:
        assert not whatsapp.text[at].isspace()
        assert whatsapp.text[:at].strip()


def test_numbers_continue_a_list_cut_across_messages() -> None:
    # A piece of an answer that continues a list is told where its lists' numbering stands.
    assert to_whatsapp("1. x\n1. y", numbers=(4,)).text == "4. x\n5. y"
    assert to_telegram_html("- a\n  1. b\n  1. c", numbers=(None, 7)).text == "• a\n  7. b\n  8. c"
    # Only the first list at that depth: a new list after it counts from its own start.
    assert to_whatsapp("1. x\n\nText\n\n1. y", numbers=(4,)).text == "4. x\n\nText\n\n1. y"
    assert to_web_markdown("1. x", numbers=(4,)).text == "1. x"


def test_unpaired_markers_are_reported() -> None:
    # Text after an unpaired marker could still pair it, so the paragraph is not settled.
    formatted = [to_whatsapp(md) for md in ("a **b** c.", "a **b c.", "a `b c.", "see [a b")]
    assert [isinstance(f, Formatted) and f.unpaired for f in formatted] == [
        False,
        True,
        True,
        True,
    ]
    assert isinstance(f := to_telegram_html("snake_case ok ~5 min"), Formatted)
    assert f.unpaired
