"""Long actions end (issue 30, defect 5): an action that sets the editor's image or mask gets a
time limit, then a message that names it and says how to try again; the next try works."""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest
from skimage import data
from ui_fixtures import tiny_models, write_samples

from explorer import deadlines
from explorer.media.editor import editor_value

pytestmark = pytest.mark.timeout(120)


def test_a_wait_past_its_limit_says_what_and_how_to_retry():
    release = threading.Event()
    with pytest.raises(deadlines.TookTooLong, match=r"Loading the image took longer than "
                                                    r"0\.05 s.*Upload it again\."):
        deadlines.within(0.05, "Loading the image", "Upload it again.", release.wait)
    release.set()
    assert deadlines.within(5, "Adding", "Again.", lambda: 2 + 2) == 4
    with pytest.raises(ZeroDivisionError):  # the work's own errors are not timeouts
        deadlines.within(5, "Dividing", "Again.", lambda: 1 / 0)


def test_an_automatic_mask_past_its_limit_is_refused_and_a_retry_works(tmp_path, monkeypatch):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    [grabcut] = [f for f in demo.fns.values() if f.api_name == "mask_grabcut"]
    photo = np.ascontiguousarray(np.tile(data.chelsea(), (2, 2, 1)))  # 600 × 902: GrabCut
    value = editor_value(photo, None)
    monkeypatch.setattr(deadlines, "IMAGE_ACTION_S", 0.0)  # no time at all: always too late
    with pytest.raises(gr.Error, match="GrabCut|grabcut") as refused:
        grabcut.fn(value, "add to mask", None, None)
    assert "took longer than 0 s" in str(refused.value) and "again" in str(refused.value)
    monkeypatch.setattr(deadlines, "IMAGE_ACTION_S", 60.0)
    shown, record, notice = grabcut.fn(value, "add to mask", None, None)
    assert record["mask"] and shown["composite"] is not None
