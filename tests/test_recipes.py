"""The named training recipes (isnet.training.recipes) and the arena's --isnet-recipe."""

from dataclasses import replace

import pytest

from benchmarks.arena import build_parser, method_config
from isnet.io.checkpoints import read_metadata
from isnet.training.config import HEATMAP_LOSS_METHODS, TRAINING_METHODS, TrainConfig
from isnet.training.recipes import RECIPES, bundled_recipe, sgd_scaled_recipe

STUDY_BASE = TrainConfig(model="densenet121", num_classes=10, method="selective", epochs=15,
                         batch_size=32, learning_rate=0.05, schedule="cosine", seed=0,
                         input_size=64)


def test_bundled_recipe_reproduces_the_bundled_isnets_stored_config():
    stored = read_metadata("assets/checkpoints/isnet_densenet121.safetensors")["config"]
    # the bundled ISNet is the stochastic variant (run 13)
    made = bundled_recipe(replace(STUDY_BASE, method="stochastic")).to_dict()
    assert set(stored) <= set(made)
    defaults = TrainConfig().to_dict()  # fields added after it was trained: at their defaults
    assert all(made[key] == defaults[key] for key in set(made) - set(stored))
    for key, value in stored.items():
        if isinstance(value, float):
            assert made[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert list(made[key]) == value if isinstance(value, list) else made[key] == value


def test_sgd_scaled_recipe_scales_step_by_one_minus_p():
    config = replace(STUDY_BASE, heat_weight=0.5, learning_rate=0.02, grad_clip_norm=4.0)
    made = sgd_scaled_recipe(config)
    assert made.learning_rate == pytest.approx(0.04) and made.optimizer == "sgd"
    assert made.grad_clip_norm == pytest.approx(2.0)
    assert sgd_scaled_recipe(replace(config, grad_clip_norm=None)).grad_clip_norm is None


def test_bundled_recipe_is_sgd_scaled_with_adamw_at_its_own_learning_rate():
    config = replace(STUDY_BASE, heat_weight=0.5, learning_rate=0.02, grad_clip_norm=4.0)
    made = bundled_recipe(config)
    assert made.optimizer == "adamw" and made.learning_rate == 1e-3
    assert made.method == config.method  # a recipe never changes the variant
    assert replace(made, optimizer="sgd", learning_rate=0.04) == sgd_scaled_recipe(config)


@pytest.mark.parametrize("method", TRAINING_METHODS)
def test_recipes_touch_only_heatmap_loss_methods(method):
    config = replace(STUDY_BASE, method=method)
    assert RECIPES["engine"](config) == config
    for name in ("bundled", "sgd-scaled"):
        changed = RECIPES[name](config) != config
        assert changed == (method in HEATMAP_LOSS_METHODS), name


def test_arena_applies_the_chosen_recipe():
    args = build_parser().parse_args(["--isnet-recipe", "bundled", "--lr", "0.05"])
    assert method_config("selective", args).foreground_form == "hybrid"
    assert method_config("selective", args).optimizer == "adamw"
    assert method_config("rrr", args).learning_rate == 0.05
    old = build_parser().parse_args(["--isnet-recipe", "sgd-scaled", "--lr", "0.05"])
    assert method_config("stochastic", old).learning_rate == pytest.approx(0.05 / 0.3)
    default = build_parser().parse_args(["--lr", "0.05"])
    assert method_config("selective", default).learning_rate == 0.05
