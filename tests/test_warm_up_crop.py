"""Issue 29 leftover (c): the warm-up prepares each model's input exactly as Explain does.

A model whose checkpoint records torchvision's resize-and-crop sees the centre crop of a
picture, normalised with its own statistics. If the warm-up squeezed the picture instead, its
cached maps would be of another tensor and the first Explain of every sample would recompute.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from ui_fixtures import tiny_models, write_samples

from explorer.handlers.explain import ExplainRequest, explain
from explorer.media.editor import EditorInput


def test_warm_up_caches_the_maps_explain_asks_for_when_a_model_crops(tmp_path, monkeypatch):
    from explorer.app import make_context, warm_up
    from explorer.handlers import explain as explain_handlers

    models = tiny_models()
    for _, metadata in models.values():  # both crop (torchvision's preset) and normalise
        metadata["data"] = {"transforms": {"resize": "crop"}}
        metadata["normalisation"] = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    images, masks = write_samples(tmp_path / "assets")
    ctx = make_context(models=models, samples_dir=images, masks_dir=masks,
                       work_dir=tmp_path / "work")
    warm_up(ctx)
    computed = []
    original = explain_handlers.engine_explain
    monkeypatch.setattr(explain_handlers, "engine_explain",
                        lambda *a, **k: computed.append(1) or original(*a, **k))
    for sample in ctx.samples:
        pixels = np.array(Image.open(sample.image_path).convert("RGBA"))
        editor = {"background": pixels, "layers": [], "composite": None}
        explain(ctx, None, ExplainRequest(EditorInput(editor), *ctx.default_pair))
    assert not computed  # every sample's maps came from the warm-up, crop and all
