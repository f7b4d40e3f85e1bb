"""The family contract: what every LRP-ready model family must do, as plain check functions.

Each check takes a :class:`Subject` (a family's tiny model, built fresh in float64 with random
BatchNorm statistics) and asserts one property against an independent oracle: gradient×input
for LRP-0, the logits for conservation, autograd for gradients, the family's own reader for its
architecture, a file round trip for checkpoints. ``tests/test_family_contract.py`` runs every
check on every registered family; a new family (``docs/how-to/add-a-model-family.md``) gets
them all by registering a ``tiny_<family>`` model and a walk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import isnet
from isnet.io.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from isnet.lrp.registry import is_lrp_ready
from isnet.models.registry import Family, create_model, families, model_names
from tests.conftest import SEED, randomize_batchnorm
from tests.lrp_oracles import every_parameter_gets_a_gradient, gradient_times_input, zero_biases

CLASSES = 3


@dataclass(frozen=True)
class Subject:
    """One family under test: its registered tiny model and a batch to explain.

    Attributes:
        family: the registered :class:`Family`.
        model_name: its tiny model's registered name (``tiny_<family>``).
        images: (4, 3, 32, 32) float64 in [0, 0.1); masks: (4, 1, 32, 32), a centre square.
    """

    family: Family
    model_name: str
    images: torch.Tensor
    masks: torch.Tensor

    def build(self) -> torch.nn.Module:
        """A fresh tiny model: float64, eval, random BatchNorm statistics, seeded."""
        torch.manual_seed(SEED)
        model = create_model(self.model_name, num_classes=CLASSES).double()
        return randomize_batchnorm(model, torch.Generator().manual_seed(SEED)).eval()


def lrp_families() -> list[str]:
    """Registered families with a ``tiny_<family>`` model that has an LRP walk."""
    names = set(model_names())
    found = []
    for family in families():
        tiny = f"tiny_{family.name}"
        if tiny in names and is_lrp_ready(create_model(tiny, num_classes=CLASSES)):
            found.append(family.name)
    return found


def subject(family: Family) -> Subject:
    """The :class:`Subject` of ``family``, with a seeded batch."""
    generator = torch.Generator().manual_seed(SEED)
    images = 0.1 * torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    masks[..., 8:24, 8:24] = 1
    return Subject(family, f"tiny_{family.name}", images, masks)


# --- the checks --------------------------------------------------------------------------------

def check_trace_equals_forward(s: Subject, tmp_path: Path) -> None:
    """forward_trace gives forward's logits; classifier_layer is the last Linear (K outputs)."""
    model = s.build()
    logits, _ = model.forward_trace(s.images)
    torch.testing.assert_close(logits, model(s.images))
    assert isinstance(model.classifier_layer, torch.nn.Linear)
    assert model.classifier_layer.out_features == model.num_classes == CLASSES


def check_architecture_reads_back_from_the_weights(s: Subject, tmp_path: Path) -> None:
    """The family reads its constructor arguments back from a state dict; they rebuild it."""
    model = s.build()
    arch = s.family.architecture_from_state_dict(model.state_dict())
    assert {k: v for k, v in arch.items() if k not in s.family.guessed_keys} == \
        {k: v for k, v in model.arch.items() if k not in s.family.guessed_keys}
    rebuilt = s.family.model_class(**model.arch)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


def check_each_relu_runs_once_and_not_in_place(s: Subject, tmp_path: Path) -> None:
    """Every activation LRP reads is its own tensor: no in-place ReLU, no ReLU module reused."""
    model = s.build()
    calls: dict[int, int] = {}
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    hooks = [m.register_forward_hook(lambda m, *_: calls.__setitem__(id(m), calls.get(id(m), 0)
                                                                       + 1)) for m in relus]
    try:
        model.forward_trace(s.images)
    finally:
        for hook in hooks:
            hook.remove()
    assert not [m for m in relus if m.inplace]
    assert sorted(calls.values()) == [1] * len(relus)


def check_lrp_zero_equals_gradient_times_input(s: Subject, tmp_path: Path) -> None:
    """With ε → 0 and the ε rule at the input, LRP equals gradient × input (exact for ReLU nets)."""
    model = s.build()
    classes = torch.tensor([0, 1, 2, 0])
    _, heatmaps = isnet.explain(model, s.images, classes, epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps[:, 0], gradient_times_input(model, s.images, classes),
                               rtol=1e-7, atol=1e-10)


def check_conservation_without_biases(s: Subject, tmp_path: Path) -> None:
    """Bias-free, ε → 0: each map's relevance sums to its class's logit (mode "all")."""
    model = zero_biases(s.build())
    logits, heatmaps = isnet.explain(model, s.images, mode="all", epsilon=1e-12, zb=False)
    torch.testing.assert_close(heatmaps.sum((2, 3, 4)), logits, rtol=1e-8, atol=1e-10)


def check_explaining_without_a_graph_gives_the_same_maps(s: Subject, tmp_path: Path) -> None:
    """Under ``torch.inference_mode`` (the audit's way) the maps equal those with autograd."""
    model = s.build()
    _, with_graph = isnet.explain(model, s.images)
    with torch.inference_mode():
        _, without = isnet.explain(model, s.images)
    torch.testing.assert_close(without, with_graph.detach())


def check_every_explain_mode_gives_finite_maps_of_the_right_shape(s: Subject,
                                                                  tmp_path: Path) -> None:
    """The ISNet wrapper in each explain mode: (B, K) logits, (B, M, C, H, W) maps."""
    model = s.build()
    for mode in isnet.EXPLAIN_MODES:
        target = torch.tensor([0, 1, 2, 0]) if mode == "target" else None
        logits, heatmaps = isnet.ISNet(model, explain=mode)(s.images, target)
        maps = CLASSES if mode == "all" else 1
        assert logits.shape == (4, CLASSES)
        assert heatmaps.shape == (4, maps, 3, 32, 32), mode
        assert torch.isfinite(heatmaps).all(), mode


def check_heatmap_loss_alone_reaches_every_parameter(s: Subject, tmp_path: Path) -> None:
    """The heatmap loss trains every parameter, in eval and train mode, one map or all."""
    for mode in ("all", "target"):
        for training in (False, True):
            every_parameter_gets_a_gradient(s.build(), s.images, s.masks, mode, training)


def check_detach_bias_changes_the_gradients(s: Subject, tmp_path: Path) -> None:
    """``detach_bias`` is a real switch: with it off, biases enter the rules' gradients."""
    grads = {}
    for detach in (True, False):
        model = s.build()
        _, maps = isnet.ISNet(model, detach_bias=detach)(s.images)
        isnet.heatmap_loss(maps, s.masks).backward()
        grads[detach] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert not torch.allclose(grads[True], grads[False])


def check_checkpoint_round_trip(s: Subject, tmp_path: Path) -> None:
    """save_checkpoint → load_checkpoint: same family, name and logits."""
    model = s.build().float()
    path = save_checkpoint(tmp_path / "m.safetensors", model, class_names=["a", "b", "c"])
    loaded, metadata = load_checkpoint(path)
    assert metadata["family"] == s.family.name
    assert metadata["model_name"] == s.model_name
    x = s.images.float()
    torch.testing.assert_close(loaded(x), model(x))


def check_missing_weights_name_the_family_and_the_key(s: Subject, tmp_path: Path) -> None:
    """A state dict missing the classifier's weight is refused, naming the family and key."""
    model = s.build()
    key = next(f"{name}.weight" for name, module in model.named_modules()
               if module is model.classifier_layer)
    state = model.state_dict()
    del state[key]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=rf"Closest: {s.family.name}.*{key}"):
        load_checkpoint(tmp_path / "broken.pth")


CONTRACT: list[Callable[[Subject, Path], None]] = [
    check_trace_equals_forward,
    check_architecture_reads_back_from_the_weights,
    check_each_relu_runs_once_and_not_in_place,
    check_lrp_zero_equals_gradient_times_input,
    check_conservation_without_biases,
    check_explaining_without_a_graph_gives_the_same_maps,
    check_every_explain_mode_gives_finite_maps_of_the_right_shape,
    check_heatmap_loss_alone_reaches_every_parameter,
    check_detach_bias_changes_the_gradients,
    check_checkpoint_round_trip,
    check_missing_weights_name_the_family_and_the_key,
]
"""Every check a family must pass, in the order they are cheapest to debug."""
