"""The session report: one offline HTML page a reader can find their way through.

At the top, a **summary** (what the session looked at: how many explanations, bias-lab marks,
audits, strategy searches, stress tests, counterfactual sweeps and fine-tunes, with the models
and their SHA-256) and a **table of contents** linking to every section. Each section then
shows its pictures (curves of a stress test, a counterfactual sweep or a fine-tune included when
the session made them), its table (when the view showed one) and its numbers, written as HTML
tables: scalars as text, short lists inline, nested records as nested tables, and arrays too
long to read (a 2,000-image ranking) as a line saying how many values they hold and where to
find them (the view's JSON export). Nothing is written as JSON with escapes; the page has no
scripts and no network links (images are inlined as base64).
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from isnet.io.export import png_bytes

LONGEST_LIST = 12
"""Lists longer than this are summarised, not printed, in the report."""
KIND_NAMES = {"explain": "explanation", "bias": "bias-lab mark", "audit": "audit",
              "strategies": "strategy search", "robustness": "robustness sweep",
              "arena": "arena leaderboard", "stress_test": "stress test",
              "counterfactual": "counterfactual sweep", "fine_tune": "fine-tune"}
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
         "figure{display:inline-block;margin:.5em;vertical-align:top}"
         "img{max-width:320px;image-rendering:pixelated}.wide img{max-width:720px;"
         "image-rendering:auto}table{border-collapse:collapse;margin:.4em 0}"
         "td,th{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}"
         "nav li{margin:.1em 0}.summary{background:#f4f4f4;padding:.6em 1em}")


def cell(value: Any) -> str:
    """One value as HTML: text, an inline list, a nested table, or a count of a long list."""
    if isinstance(value, Mapping):
        return table_of(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) > LONGEST_LIST or any(isinstance(v, (list, dict)) for v in value):
            return (f"<em>{len(value)} values (in this view's JSON export)</em>" if value
                    else "—")
        return html.escape(", ".join(text_of(v) for v in value)) or "—"
    return html.escape(text_of(value))


def text_of(value: Any) -> str:
    """A scalar as plain text (floats to 4 significant digits, None as a dash)."""
    if value is None:
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def table_of(numbers: Mapping[str, Any]) -> str:
    """A mapping as a two-column HTML table (key, value)."""
    rows = "".join(f"<tr><th>{html.escape(str(key))}</th><td>{cell(value)}</td></tr>"
                   for key, value in numbers.items())
    return f"<table>{rows}</table>" if rows else "—"


def grid_of(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A (headers, rows) table as HTML."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def summary_of(views: Sequence[Mapping[str, Any]],
               models: Mapping[str, str | None]) -> str:
    """The summary at the top: what was looked at, and with which models."""
    counts = Counter(view["kind"] for view in views)
    seen = ", ".join(f"{n} {KIND_NAMES.get(kind, kind)}{'s' if n != 1 else ''}"
                     for kind, n in counts.items())
    listed = "".join(f"<li>{html.escape(label)}: sha256 {html.escape((digest or '—')[:16])}…"
                     "</li>" for label, digest in models.items())
    first, last = views[0]["time"], views[-1]["time"]
    return (f"<div class='summary'><h2 id='summary'>Summary</h2><p>This session, from "
            f"{html.escape(first)} to {html.escape(last)}, looked at {html.escape(seen)}.</p>"
            f"<p>Models:</p><ul>{listed}</ul></div>")


def section_of(anchor: str, view: Mapping[str, Any], models_text: str,
               pictures: Sequence[tuple[str, np.ndarray]]) -> str:
    """One view's section: title, models, pictures, table, numbers and settings."""
    wide = view["kind"] in ("stress_test", "counterfactual", "fine_tune")
    parts = [f"<section><h2 id='{anchor}'>{html.escape(view['title'])} "
             f"<small>({html.escape(view['time'])})</small></h2>",
             f"<p>{html.escape(models_text)}</p>"]
    for caption, image in pictures:
        encoded = base64.b64encode(png_bytes(image)).decode("ascii")
        parts.append(f"<figure{' class=wide' if wide else ''}><img alt='{html.escape(caption)}'"
                     f" src='data:image/png;base64,{encoded}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if view.get("table"):
        parts.append(grid_of(view["table"]["headers"], view["table"]["rows"]))
    parts.append("<h3>Numbers</h3>" + table_of(view["numbers"]))
    parts.append("<h3>Settings</h3>" + table_of(view["settings"]))
    parts.append("<p><a href='#contents'>↑ contents</a></p></section>")
    return "".join(parts)


def report_html(title: str, views: Sequence[Mapping[str, Any]],
                sections: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
                models: Mapping[str, str | None]) -> str:
    """The whole page: summary, contents, then one section per view (``sections``: per view,
    its models line and its pictures)."""
    anchors = [f"view-{number}" for number in range(1, len(views) + 1)]
    contents = "".join(f"<li><a href='#{a}'>{html.escape(v['title'])}</a> "
                       f"<small>({html.escape(v['time'])})</small></li>"
                       for a, v in zip(anchors, views, strict=True))
    body = "".join(section_of(a, v, text, pictures)
                   for a, v, (text, pictures) in zip(anchors, views, sections, strict=True))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{summary_of(views, models)}<nav><h2 id='contents'>Contents</h2><ol>{contents}"
            f"</ol></nav>{body}</body></html>")
