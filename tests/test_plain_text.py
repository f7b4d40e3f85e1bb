"""Names and metadata from a checkpoint show as text: a display name, class names or metadata
holding Markdown image syntax or an ``<img>`` tag render to no ``<img>`` (the browser fetches
nothing) and still read the same to a person (issue 34 item 7)."""

from __future__ import annotations

import html
import re

import markdown_it
import pytest
import torch
from ui_fixtures import make_context

import isnet
from explorer.handlers import models as hm
from explorer.handlers.explain_views import conservation_notice
from explorer.plain_text import plain
from isnet.io.checkpoints import save_checkpoint

IMAGE = "![x](http://127.0.0.1:9/x.png)"
TAG = "<img src=http://127.0.0.1:9/y.png>"
RENDERER = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
"""CommonMark with raw HTML allowed and GFM tables, as the browser's Markdown renderer is."""


def _rendered(markdown: str) -> str:
    return RENDERER.render(markdown)


def _read(rendered: str) -> str:
    """What a person reads: the HTML's text, tags dropped, entities resolved."""
    return html.unescape(re.sub(r"<[^>]*>", "", rendered))


def test_the_renderer_turns_both_strings_into_images_unescaped():
    """The oracle: unescaped, both strings become an ``<img>`` the browser would fetch."""
    assert "<img" in _rendered(IMAGE) and "<img" in _rendered(TAG)


@pytest.mark.parametrize("text", [IMAGE, TAG, "[link](http://127.0.0.1:9/)", "**bold** _it_",
                                  "val_accuracy _a_b_", "a | b", "`code`", "&lt;img&gt;",
                                  "trailing #", "two\nlines"])
def test_plain_renders_as_the_same_characters(text):
    rendered = _rendered(plain(text))
    assert "<img" not in rendered and "<a " not in rendered and "<strong>" not in rendered
    assert _read(rendered).strip() == text.replace("\n", " ")
    assert "<em>" not in rendered


def test_a_checkpoints_names_and_metadata_render_as_text_in_its_card(tmp_path):
    ctx = make_context(tmp_path)
    torch.manual_seed(0)
    model = isnet.create_model("tiny_densenet", num_classes=3)
    path = save_checkpoint(tmp_path / "evil.safetensors", model,
                           class_names=[IMAGE, TAG, "plain"], input_size=32,
                           config={"method": "selective", "note": TAG},
                           data={"dataset": IMAGE, "bias": {"kind": TAG}},
                           provenance={IMAGE: [TAG]})
    entry = hm.load_model(ctx, "s", hm.LoadRequest(upload=str(path), name=IMAGE))
    card = hm.model_card(entry)
    rendered = _rendered(card)
    assert "<img" not in rendered
    assert not any("127.0.0.1" in tag for tag in re.findall(r"<[^>]*>", rendered))  # no links
    text = _read(rendered)
    assert IMAGE in text and TAG in text  # the names still read the same
    assert f"{IMAGE}, {TAG}, plain" in text  # the class list, in order
    assert entry.label == IMAGE and entry.class_names == [IMAGE, TAG, "plain"]  # stored as given
    assert "<img" not in _rendered(hm.cards(ctx, "s"))


def test_the_conservation_notice_shows_a_label_as_text():
    numbers = {"relevance_sum": 0.1, "score": 1.0, "absorbed_by_bias": 0.9}
    rendered = _rendered(conservation_notice(TAG + IMAGE, numbers))
    assert "<img" not in rendered and TAG + IMAGE in _read(rendered)
