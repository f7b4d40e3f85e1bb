"""Old spellings of widget values: before widgets took ``(label, value)`` choices, a label was
also the value a ``gradio_client`` script had to send (``"shared (compare strengths)"``). The
short ids (``"shared"``) replace them; each old label is still accepted for one release, and
each use is logged as deprecated (see docs/glossary.md, "Short ids in the API").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeVar

LOG = logging.getLogger("explorer.deprecated")
"""Where a use of an old spelling is reported (a warning naming the short id to send)."""

Value = TypeVar("Value")


def current_spelling(value: Value, old_spellings: Mapping[str, str], what: str) -> Value | str:
    """``value``, or its short id when it is an old label in ``old_spellings`` (label → id);
    the old label is then logged as deprecated, naming ``what`` (the widget) and the id."""
    if isinstance(value, str) and value in old_spellings:
        short = old_spellings[value]
        LOG.warning("Deprecated spelling of %s: %r; send %r instead (old labels are accepted "
                    "for one release).", what, value, short)
        return short
    return value


def old_labels(choices: list[tuple[str, str]]) -> dict[str, str]:
    """label → id for the ``(label, id)`` choices whose label is not itself an id."""
    ids = {value for _, value in choices}
    return {label: value for label, value in choices if label not in ids}
