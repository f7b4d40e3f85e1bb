"""The Models tab's model-randomisation test (issue 29 item 3), through its handler: a sample or
the Explain tab's image, the similarity per stage as a figure, and the verdict."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from ui_fixtures import make_context, object_image

from explorer.errors import InputError
from explorer.handlers import sanity
from explorer.media.editor import EditorInput, editor_value


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


def test_the_handler_plots_every_stage_and_gives_a_verdict(ctx):
    model = ctx.default_pair[0]
    image = sanity.chosen_image(ctx, ctx.samples[0].name, None)
    view = sanity.randomisation_test(ctx, None, model, image, stages=3)
    assert [s.stage for s in view.stages] == [0, 1, 2, 3]
    assert view.stages[0].spearman == pytest.approx(1.0)
    assert view.stages[0].ssim == pytest.approx(1.0)
    assert isinstance(view.figure, Figure)
    lines = view.figure.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines[:2]] == [
        [s.spearman for s in view.stages], [s.ssim for s in view.stages]]
    assert view.depends == (view.stages[-1].spearman < sanity.DEPENDS_BELOW)
    word = "depend on the learned weights" if view.depends else "barely depend"
    assert word in view.summary and "| 3 |" in view.summary
    # the tiny models are untrained: the summary says so
    assert "Untrained?" in view.summary
    # the cascade is top-down: the classifier goes first
    assert any("classifier" in name for name in view.stages[1].layers)


def test_the_explain_tabs_image_and_refusals(ctx):
    image, mask = object_image(1, size=48)
    editor = EditorInput(editor_value(image, mask))
    assert (sanity.chosen_image(ctx, sanity.EXPLAIN_IMAGE, editor) == image).all()
    view = sanity.randomisation_test(ctx, None, ctx.default_pair[1], image, stages=2)
    assert len(view.stages) == 3
    with pytest.raises(InputError):
        sanity.randomisation_test(ctx, None, None, image)
    with pytest.raises(InputError):
        sanity.randomisation_test(ctx, None, ctx.default_pair[0], None)
    with pytest.raises(InputError):
        sanity.chosen_image(ctx, None, editor)


def test_the_models_tab_offers_the_test(tmp_path):
    from ui_fixtures import tiny_models, write_samples

    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    names = {dependency.get("api_name") for dependency in demo.config["dependencies"]}
    assert "randomisation_test" in names
