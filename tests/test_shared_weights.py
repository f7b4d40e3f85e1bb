"""Repeated loads of a bundled checkpoint share one copy of its weights (issue 34, item 5).

Forty raw-API loads of a bundled model used to keep +1.1 GB. Here ten loads of one bundled
checkpoint in one session leave the number of distinct tensor storages in the store unchanged
(counted by ``untyped_storage().data_ptr()``), every load still explains like the file, and a
fine-tune of a shared model leaves the shared weights as they were.
"""

from __future__ import annotations

import torch
from ui_fixtures import CLASSES, SIZE, make_context

import isnet
from explorer.handlers import models as hm
from explorer.handlers.train_checks import prepare_model
from explorer.weight_sharing import share_weights, storage_count
from isnet.models.densenet import tiny_densenet


def _bundled(ctx, folder):
    torch.manual_seed(3)
    folder.mkdir()
    isnet.save_checkpoint(folder / "tiny.safetensors", tiny_densenet(num_classes=3).eval(),
                          model_name="tiny_densenet", class_names=list(CLASSES),
                          input_size=SIZE)
    ctx.bundled_dir = folder


def _storages(ctx, session):
    return storage_count(e.model for e in ctx.store.visible(session))


def test_ten_loads_of_a_bundled_checkpoint_keep_one_copy_of_its_weights(tmp_path):
    ctx = make_context(tmp_path)
    _bundled(ctx, tmp_path / "bundled")
    first = hm.load_model(ctx, "s", hm.LoadRequest(bundled="tiny.safetensors"))
    after_one = _storages(ctx, "s")
    entries = [hm.load_model(ctx, "s", hm.LoadRequest(bundled="tiny.safetensors"))
               for _ in range(10)]
    assert _storages(ctx, "s") == after_one
    assert len({e.model_id for e in entries}) == 10  # ten models, one set of tensors
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        for entry in entries:
            assert torch.equal(entry.model(x), first.model(x))


def test_a_fine_tune_copy_of_a_shared_model_leaves_the_shared_weights_alone(tmp_path):
    ctx = make_context(tmp_path)
    _bundled(ctx, tmp_path / "bundled")
    one = hm.load_model(ctx, "s", hm.LoadRequest(bundled="tiny.safetensors"))
    two = hm.load_model(ctx, "s", hm.LoadRequest(bundled="tiny.safetensors"))
    before = {k: v.clone() for k, v in one.model.state_dict().items()}
    copy, _ = prepare_model(two, list(CLASSES))
    optimiser = torch.optim.SGD(copy.parameters(), lr=0.5)
    copy.train()
    loss = copy(torch.rand(4, 3, SIZE, SIZE)).logsumexp(1).mean()
    loss.backward()
    optimiser.step()
    for key, value in one.model.state_dict().items():
        assert torch.equal(value, before[key]), key
        assert torch.equal(value, two.model.state_dict()[key]), key


def test_different_weights_are_never_shared():
    torch.manual_seed(0)
    a = tiny_densenet(num_classes=3)
    torch.manual_seed(1)
    b = tiny_densenet(num_classes=3)
    assert not share_weights(a, b)
    assert storage_count([a, b]) == 2 * storage_count([a])
