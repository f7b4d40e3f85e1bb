"""Background tint augmentation (isnet.training.augment) and its use by fit."""

from __future__ import annotations

import pytest
import torch

from isnet import TrainConfig, fit
from isnet.data.image_set import ImageSet
from isnet.training import augment
from isnet.training.augment import tint_backgrounds


def _batch(count: int = 64):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 3, 8, 8, generator=generator, dtype=torch.float64)
    masks = torch.zeros(count, 1, 8, 8, dtype=torch.float64)
    masks[:, :, 2:6, 2:6] = 1.0
    return images, masks


def test_chosen_backgrounds_become_one_colour_and_objects_never_change():
    images, masks = _batch()
    out = tint_backgrounds(images, masks, 0.5, seed=1, step=3)
    foreground = masks.bool().expand_as(images)
    assert torch.equal(out[foreground], images[foreground])  # the object is untouched
    changed = (out != images).flatten(1).any(1)
    assert 16 < int(changed.sum()) < 48  # about half of 64
    for index in torch.nonzero(changed).flatten():
        background = out[index][~foreground[index]].view(3, -1)  # (C, pixels)
        assert torch.equal(background, background[:, :1].expand_as(background))  # one colour
        assert ((background >= 0) & (background <= 1)).all()
    for index in torch.nonzero(~changed).flatten():
        assert torch.equal(out[index], images[index])
    assert not torch.equal(images, out) and images.dtype == out.dtype  # input not modified


def test_the_draw_is_fixed_by_seed_and_step_and_soft_masks_blend():
    images, masks = _batch()
    first = tint_backgrounds(images, masks, 0.5, seed=1, step=3)
    assert torch.equal(first, tint_backgrounds(images, masks, 0.5, seed=1, step=3))
    assert not torch.equal(first, tint_backgrounds(images, masks, 0.5, seed=1, step=4))
    assert tint_backgrounds(images, masks, 0.0, seed=1, step=3) is images
    everything = tint_backgrounds(images, masks, 1.0, seed=1, step=3)
    assert (everything != images).flatten(1).any(1).all()
    soft = masks * 0.25
    blended = tint_backgrounds(images, soft, 1.0, seed=1, step=3)
    colour = everything[:, :, 0, 0]  # a background pixel shows the drawn colour
    expected = images[:, :, 3, 3] * 0.25 + colour * 0.75
    torch.testing.assert_close(blended[:, :, 3, 3], expected)
    with pytest.raises(ValueError, match="fraction"):
        tint_backgrounds(images, masks, 1.5, seed=1, step=0)


def test_fit_trains_on_tinted_batches_when_asked(monkeypatch):
    from isnet.models import create_model

    images, masks = _batch(16)
    labels = torch.arange(16) % 3
    seen = []
    original = augment.tint_backgrounds

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(bool((out != args[0]).any()))
        return out

    monkeypatch.setattr("isnet.training.loop.tint_backgrounds", spy)
    config = TrainConfig(model="tiny_densenet", num_classes=3, method="selective", epochs=1,
                         batch_size=8, input_size=8, seed=0, background_tint=1.0)
    torch.manual_seed(0)
    model = create_model("tiny_densenet", num_classes=3).double()
    result = fit(model, ImageSet(images, masks, labels, ['a', 'b', 'c']), None, config)
    assert result.status == "completed" and seen == [True, True]  # both steps saw tints
    with pytest.raises(ValueError, match="background_tint"):
        TrainConfig(background_tint=2.0)
