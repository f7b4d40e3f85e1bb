"""explain(): ``target`` says which output (a class), ``mode`` which map; the old spelling warns."""

import pytest
import torch

import isnet


def test_mode_keyword_gives_the_same_maps_as_the_old_spelling_which_warns(tiny_model, images):
    tiny_model.eval()
    for mode in ("all", "selective", "predicted"):
        new_logits, new_maps = isnet.explain(tiny_model, images, mode=mode)
        with pytest.warns(DeprecationWarning, match=f"mode='{mode}'"):
            old_logits, old_maps = isnet.explain(tiny_model, images, mode)
        assert torch.equal(new_logits, old_logits)
        assert torch.equal(new_maps, old_maps)


def test_a_class_target_needs_no_mode_and_the_default_is_the_top_prediction(tiny_model, images):
    tiny_model.eval()
    logits, top = isnet.explain(tiny_model, images)
    _, chosen = isnet.explain(tiny_model, images, target=logits.argmax(1))
    _, named = isnet.explain(tiny_model, images, target=logits.argmax(1), mode="target")
    assert torch.equal(top, chosen)
    assert torch.equal(chosen, named)
    _, other = isnet.explain(tiny_model, images, target=(logits.argmax(1) + 1) % logits.shape[1])
    assert not torch.equal(top, other)


def test_a_class_with_a_mode_that_ignores_it_is_refused(tiny_model, images):
    with pytest.raises(ValueError, match="leave target out"):
        isnet.explain(tiny_model, images, target=1, mode="selective")


def test_both_spellings_disagreeing_is_refused(tiny_model, images):
    with pytest.raises(ValueError, match="not both"), pytest.warns(DeprecationWarning):
        isnet.explain(tiny_model, images, target="all", mode="selective")


def test_an_unknown_mode_names_the_valid_ones(tiny_model, images):
    with pytest.raises(ValueError, match="choose one of"):
        isnet.explain(tiny_model, images, mode="everything")
