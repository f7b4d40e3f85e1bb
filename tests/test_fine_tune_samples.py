"""Issue 30 defect 12: a fine-tune on the bundled samples (5 training and 1 validation image)
says what its split is and warns that one validation image measures nothing; the runs table
prints rounded numbers; the curves' legends are words, not code names."""

from __future__ import annotations

from ui_fixtures import make_context

from explorer.entries import ModelEntry
from explorer.handlers import train as handlers_train
from explorer.media.plots import training_figure


def test_a_fine_tune_on_the_samples_says_its_split_and_warns_about_one_validation_image(
        tmp_path):
    ctx = make_context(tmp_path)  # 6 samples with masks: a seeded 80/20 split gives 5 / 1
    steps = handlers_train.fine_tune(ctx, "s", handlers_train.FineTuneRequest(
        ctx.default_pair[1], source="samples", epochs=1))
    first = next(steps)  # before the worker starts
    steps.close()
    assert "Split: 5 training / 1 validation image" in first.status
    assert "accuracy is 0 or 1" in first.status


def test_the_runs_table_rounds_and_the_legend_uses_words(tmp_path):
    ctx = make_context(tmp_path)
    base = ctx.store.get(ctx.default_pair[1], None)
    metadata = {**base.metadata, "config": {"epochs": 1},
                "metrics": {"val_accuracy": 1 / 6, "val_background_share": 0.123456789}}
    entry = ModelEntry("tuned-1", "tuned", base.model, metadata)
    row = handlers_train.runs_table(handlers_train.record_run(None, entry, None))[0]
    assert row[3:] == [0.167, 0.123]
    figure = training_figure([{"step": 1, "loss": 1.0, "val_background_share": 0.4,
                               "background_share": 0.5, "val_loss": 0.9}])
    legends = [text.get_text() for axes in figure.axes if axes.get_legend()
               for text in axes.get_legend().get_texts()]
    assert "validation background share" in legends and "validation loss" in legends
    assert not any("_" in text for text in legends)
