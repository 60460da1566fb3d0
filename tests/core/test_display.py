import pytest

from airflow_ml_provider.core.display import MAX_SHOWN, code, markdown, visible

INJECTION = "x\n\n## PASS: all fine\n![](https://example.invalid/p.png) [Approve](https://example.invalid)"


def test_visible_keeps_a_value_on_one_line_and_shows_hidden_characters():
    assert visible("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert visible("evil\u202egnp.exe") == "evil\\u202egnp.exe"  # right-to-left override
    assert visible("zero\u200bwidth\ufeff") == "zero\\u200bwidth\\ufeff"
    assert visible("\x00\x1b[31m") == "\\x00\\x1b[31m"
    assert visible("line\u2028sep") == "line\\u2028sep"
    assert visible("Zürich, 東京, القاهرة") == "Zürich, 東京, القاهرة"  # letters of any script stay


def test_long_values_end_with_an_ellipsis():
    assert len(visible("x" * 10_000)) == MAX_SHOWN
    assert visible("x" * 10_000).endswith("…")
    assert visible("x" * MAX_SHOWN) == "x" * MAX_SHOWN
    assert visible("abcdef", limit=4) == "abc…"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("d|19", "d\\|19"),
        ("$\\notacommand$", "\\$\\\\notacommand\\$"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        ("**bold** _it_ `code` ~~s~~", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\~\\~s\\~\\~"),
        ("district=d03", "district=d03"),
    ],
)
def test_markdown_escapes_what_could_start_markup(value, shown):
    assert markdown(value) == shown


def test_markdown_renders_an_injection_as_one_line_of_text():
    from markdown_it import MarkdownIt

    html = MarkdownIt("gfm-like").render(f"| Slice |\n|---|\n| {markdown(INJECTION, 200)} |\n")
    assert "<img" not in html and "<a " not in html and "<h2" not in html
    text = "x\\n\\n## PASS: all fine\\n![](https://example.invalid/p.png) [Approve](https://example.invalid)"
    assert f"<td>{text}</td>" in html


def test_code_spans_cannot_be_closed_early():
    assert code("a`b\nc") == "`a'b\\nc`"
