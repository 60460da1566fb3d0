"""Data values shown to people: slice ids, category values and samples come from the data and are data, never markup.

One function per place a value is rendered. Each first makes the text visible and short (``visible``): control,
line-break, right-to-left and zero-width characters become ``\\n``-style escapes, so a value can neither start a new
line nor reorder or hide the text around it, and a value longer than ``limit`` characters ends with an ellipsis. Then
the target's own metacharacters are escaped:

- ``markdown``: ASCII punctuation that can start inline Markdown is backslash-escaped (emphasis, code, links, images,
  table cells, strikethrough, math, and the ``:``, ``.`` and ``@`` of autolinks; CommonMark allows the escape for
  any ASCII punctuation) and ``<``/``>``/``&`` become entities, so no HTML tag either; values are never rendered at
  the start of a line, so block syntax (headings, lists) cannot start in one;
- ``code``: a code span, with backticks replaced so the value cannot close it;
- chart labels use ``visible`` and matplotlib's ``parse_math=False``, so ``$`` is never parsed as math text;
- ``slack``: Slack's mrkdwn control characters (``&``, ``<``, ``>``) become entities, as Slack asks;
- HTML uses ``html.escape(visible(value))``; log lines and MLflow tags use ``visible``.
"""

from __future__ import annotations

import string
import unicodedata

# Long enough for any real slice id or category; a 10 kB value is cut here, the JSON report keeps it whole.
MAX_SHOWN = 80
ELLIPSIS = "…"

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MARKDOWN_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# Punctuation left as is: it starts nothing in the middle of a line ("=" and "-" only underline a whole line).
_MARKDOWN_PLAIN = set("=,;'\"%/?-+{}^")
_MARKDOWN_ESCAPED = {c: "\\" + c for c in string.punctuation if c not in _MARKDOWN_PLAIN} | _MARKDOWN_ENTITIES


def _hidden(character: str) -> bool:
    """Characters that are invisible or change how the text around them is laid out: controls (Cc), formats (Cf:
    zero-width joiners and spaces, bidi embeddings, overrides and isolates), line and paragraph separators."""
    return unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")


def _escape(character: str) -> str:
    if character in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as one line of plain text without hidden characters, at most ``limit`` characters long."""
    text = "".join(_escape(c) if _hidden(c) else c for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def markdown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as literal text inside Markdown (a table cell, a list item, a sentence)."""
    return "".join(_MARKDOWN_ESCAPED.get(c, c) for c in visible(value, limit))


def slack(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as literal text in a Slack message (mrkdwn)."""
    return "".join(_MARKDOWN_ENTITIES.get(c, c) for c in visible(value, limit))


def code(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as a Markdown code span (shown verbatim, in a monospace font)."""
    return "`" + visible(value, limit).replace("`", "'") + "`"
