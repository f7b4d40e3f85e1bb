"""Issue 35, item 4: Explain requests that arrive together go through one LRP call, and each
answer equals the one-by-one answer (float64 tiny DenseNet, BatchNorm in eval with random
statistics, so a batch cannot change the maths without the test seeing it)."""

from __future__ import annotations

import threading

import pytest
import torch

from explorer.batching import MicroBatcher, batch_maps
from explorer.entries import ModelEntry
from explorer.handlers.lrp_modes import lrp_config, model_maps

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def entry(tiny_model) -> ModelEntry:
    """The float64 tiny DenseNet as the explorer holds it (z^B bounds of raw pixels)."""
    return ModelEntry("tiny", "tiny", tiny_model, {"class_names": ["a", "b", "c"],
                                                   "input_size": 32})


def assert_same(got, expected) -> None:
    """Logits, heatmaps and every conservation figure equal to 1e-6 of their size (the tiny
    model's maps are ~1e-3, so an absolute 1e-6 alone would let a 0.1 % change through)."""
    (logits, maps, books), (want_logits, want_maps, want_books) = got, expected
    assert logits.shape == want_logits.shape
    assert maps.shape == want_maps.shape
    torch.testing.assert_close(logits, want_logits, atol=1e-6 * want_logits.abs().max(), rtol=0)
    torch.testing.assert_close(maps, want_maps, atol=1e-6 * want_maps.abs().max(), rtol=0)
    for name in ("score", "relevance_sum", "absorbed_by_bias", "absorbed_by_epsilon",
                 "start_gap"):
        want = getattr(want_books, name)
        assert getattr(books, name) == pytest.approx(want, rel=1e-6, abs=1e-12), name


@pytest.mark.parametrize("targets", [[0, 2, 1, 0], [None] * 4, ["selective"] * 4],
                         ids=["per-sample classes", "predicted", "selective"])
def test_one_batched_call_equals_one_by_one(entry, images, targets):
    config = lrp_config(entry)
    batched = batch_maps(entry, images, targets, config)
    assert len(batched) == 4
    for index, target in enumerate(targets):
        assert_same(batched[index], model_maps(entry, images[index:index + 1], target, config))


def test_the_batch_does_not_mix_samples(entry, images):
    """Guard for the oracle above: the four images' maps differ, so equal answers mean each
    sample got its own."""
    maps = [m for _, m, _ in batch_maps(entry, images, [0, 0, 0, 0], lrp_config(entry))]
    size = max(float(m.abs().max()) for m in maps)
    assert all((maps[i] - maps[j]).abs().max() > 0.1 * size for i in range(4) for j in range(i))


def ask_together(batcher: MicroBatcher, entry: ModelEntry, images: torch.Tensor,
                 targets: list) -> list:
    """One thread per image, all calling ``batcher.model_maps`` at once; each thread's answer
    or exception, in order."""
    answers: list = [None] * len(targets)
    start = threading.Barrier(len(targets))

    def ask(index: int) -> None:
        start.wait()
        try:
            answers[index] = batcher.model_maps(entry, images[index:index + 1], targets[index],
                                                lrp_config(entry))
        except Exception as error:  # noqa: BLE001 — the test looks at it
            answers[index] = error

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_requests_that_arrive_together_share_one_call(entry, images):
    # the group is ready when the expected four have joined: a long gather only bounds the
    # wait, it is never reached
    batcher = MicroBatcher(max_batch=4, gather_s=30.0, expect=4)
    targets = [2, 0, 1, 2]
    answers = ask_together(batcher, entry, images, targets)
    assert batcher.batch_sizes == {4: 1}
    config = lrp_config(entry)
    for index, target in enumerate(targets):
        assert_same(answers[index], model_maps(entry, images[index:index + 1], target, config))


def test_a_bad_request_fails_alone(entry, images):
    batcher = MicroBatcher(max_batch=3, gather_s=30.0, expect=3)
    answers = ask_together(batcher, entry, images[:3], [0, 7, 1])  # the model has 3 classes
    assert isinstance(answers[1], ValueError)
    assert "[0, 2]" in str(answers[1])
    config = lrp_config(entry)
    assert_same(answers[0], model_maps(entry, images[0:1], 0, config))
    assert_same(answers[2], model_maps(entry, images[2:3], 1, config))


def test_one_image_per_request_and_a_sensible_size(entry, images):
    with pytest.raises(ValueError, match="one image per request"):
        MicroBatcher().model_maps(entry, images, None, lrp_config(entry))
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(max_batch=0)


def test_max_batch_one_runs_every_request_alone(entry, images):
    batcher = MicroBatcher(max_batch=1, gather_s=30.0)  # no gather: nothing can join
    answers = ask_together(batcher, entry, images, [None] * 4)
    assert batcher.batch_sizes == {1: 4}
    for index in range(4):
        assert_same(answers[index], model_maps(entry, images[index:index + 1], None,
                                               lrp_config(entry)))


def test_explain_goes_through_the_contexts_batcher(tmp_path):
    from ui_fixtures import make_context, object_image

    from explorer.handlers.explain import LRPOverrides, engine_explain, explain_cached
    from explorer.media.tensors import model_input

    ctx = make_context(tmp_path)
    entry = ctx.store.get(ctx.default_pair[1], None)
    x = model_input(object_image(1, seed=4)[0], entry.input_size, entry.normalisation)
    answer = explain_cached(ctx, entry, x, None, LRPOverrides())
    assert sum(ctx.batcher.batch_sizes.values()) == 1
    alone = engine_explain(entry, x, None, lrp_config(entry))
    torch.testing.assert_close(answer.heatmap, alone.heatmap, atol=1e-6, rtol=0)
    torch.testing.assert_close(answer.probabilities, alone.probabilities, atol=1e-6, rtol=0)
    assert answer.explained == alone.explained


def test_a_full_group_closes_and_the_next_requests_open_another(entry, images):
    batcher = MicroBatcher(max_batch=2, gather_s=30.0, expect=2)  # each group closes when full
    answers = ask_together(batcher, entry, images, [1, 1, 1, 1])
    assert batcher.batch_sizes == {2: 2}
    for index in range(4):
        assert_same(answers[index], model_maps(entry, images[index:index + 1], 1,
                                               lrp_config(entry)))


def test_a_lone_visitor_never_waits_for_a_batch(entry, images):
    # an hour's gather: were a lone request to wait for company, this test would time out
    batcher = MicroBatcher(max_batch=8, gather_s=3600.0)
    for index in range(3):
        assert_same(batcher.model_maps(entry, images[index:index + 1], None, lrp_config(entry)),
                    model_maps(entry, images[index:index + 1], None, lrp_config(entry)))
    assert batcher.batch_sizes == {1: 3}


def test_the_expected_size_is_the_recent_peak_of_requests_inside():
    from explorer.batching import RecentPeak

    peak = RecentPeak(window_s=-1.0)  # every call starts a new window
    assert [peak.enter(), peak.enter()] == [1, 2]
    peak.leave()
    peak.leave()
    assert peak.enter() == 2  # the previous window's peak still counts
    peak.leave()
    assert peak.enter() == 1  # two windows later it is forgotten
