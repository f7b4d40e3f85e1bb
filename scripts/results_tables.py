"""Render the Markdown tables of ``docs/results.md`` (and the README) from the committed JSON.

    python -m scripts.results_tables            # rewrite the tables in place
    python -m scripts.results_tables --check    # exit 1, naming the tables, if any is stale

A table lives in a Markdown file between two marker comments::

    <!-- table:arena-h200 -->
    (everything here is replaced)
    <!-- /table -->

The name after ``table:`` picks a function of :mod:`scripts.results_table_makers` (its
``TABLES``), which reads the run records under ``results/`` and returns the table's lines and
the files it read; this script adds a line naming those files (linked relative to the Markdown
file) and the command that made them. A new table is one small function there and one marker
pair here; ``tests/test_results_tables.py`` checks that every committed table equals what this
script renders from the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from isnet.io.atomic import write_atomically
from scripts.results_table_makers import TABLES, Table

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("docs/results.md", "README.md")
"""The Markdown files whose marked tables this script renders (relative to the repository)."""

MARKED = re.compile(r"(<!-- table:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /table -->)",
                    re.DOTALL)


def source_line(table: Table, document: Path, root: Path) -> str:
    """"From `file` (`command`)": each source linked relative to ``document``'s folder."""
    parts = []
    for source in table.sources:
        link = os.path.relpath(root / source, (root / document).parent)
        command = json.loads((root / source).read_text()).get("command")
        parts.append(f"[`{source}`]({link})" + (f" (`{command}`)" if command else ""))
    return "From " + "; ".join(parts) + "."


def render(text: str, document: Path, root: Path = ROOT) -> str:
    """``text`` with every marked table rendered afresh.

    Raises:
        KeyError: a marker names a table no function makes (the message lists the known ones).
    """
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"{document}: no table named {name!r}; known: {', '.join(TABLES)}")
        try:
            table = TABLES[name](root)
        except FileNotFoundError as missing:  # a benchmark not run yet: say how to run it
            return f"{match[1]}*No run record yet:* {missing}.\n{match[4]}"
        body = "\n".join([*table.lines, "", source_line(table, document, root)])
        return f"{match[1]}{body}\n{match[4]}"

    return MARKED.sub(replace, text)


def stale_tables(document: Path, root: Path = ROOT) -> list[str]:
    """Names of the marked tables in ``document`` that differ from a fresh rendering."""
    text = (root / document).read_text()
    fresh = render(text, document, root)
    old = {m["name"]: m["body"] for m in MARKED.finditer(text)}
    return [m["name"] for m in MARKED.finditer(fresh) if old.get(m["name"]) != m["body"]]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` only compare) the marked tables of :data:`DOCUMENTS`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a committed table is stale")
    args = parser.parse_args(argv)
    stale = {doc: stale_tables(Path(doc)) for doc in DOCUMENTS if (ROOT / doc).exists()}
    stale = {doc: names for doc, names in stale.items() if names}
    if args.check:
        for doc, names in stale.items():
            print(f"{doc}: stale tables {', '.join(names)}; run python -m scripts.results_tables")
        return 1 if stale else 0
    for doc in stale:
        path = ROOT / doc
        write_atomically(path, render(path.read_text(), Path(doc)).encode(), overwrite=True)
        print(f"rendered {', '.join(stale[doc])} in {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
