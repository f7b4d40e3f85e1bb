"""User-controlled strings shown as text inside Markdown (model cards, labels, class names).

A display name, a class name or a checkpoint's metadata can hold Markdown or HTML, e.g.
``![x](http://host/x.png)`` or ``<img src=...>``; put into a ``gr.Markdown`` unchanged, the
browser renders it and fetches the remote image. :func:`plain` escapes it so that it shows
literally: Markdown punctuation gets a backslash (CommonMark shows ``\\[`` as ``[``), HTML's
``&``, ``<`` and ``>`` become entities, and line breaks become spaces (one line stays one line,
so a name cannot start a heading or a table row of its own).
"""

from __future__ import annotations

MARKDOWN_PUNCTUATION = frozenset("\\`*_[]|#~")
"""Characters that start Markdown syntax: links and images (``[``), emphasis, code, table
cells, headings' closing ``#``. Round brackets and ``!`` stay: without ``[`` they open nothing."""

HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
"""HTML's special characters as entities (no tag, comment or autolink can open)."""


def plain(value: object) -> str:
    """``str(value)`` escaped so that Markdown renders it as the same characters, as text."""
    text = str(value)
    pieces = []
    for index, char in enumerate(text):
        if char == "_" and _inside_word(text, index):
            pieces.append(char)  # a_b: CommonMark opens no emphasis inside a word
        elif char in HTML_ENTITIES:
            pieces.append(HTML_ENTITIES[char])
        elif char in MARKDOWN_PUNCTUATION:
            pieces.append("\\" + char)
        elif char in "\r\n\t\v\f\x85\u2028\u2029":
            pieces.append(" ")
        else:
            pieces.append(char)
    return "".join(pieces)


def _inside_word(text: str, index: int) -> bool:
    """Whether ``text[index]`` has a letter or digit on both sides."""
    return 0 < index < len(text) - 1 and text[index - 1].isalnum() and text[index + 1].isalnum()
