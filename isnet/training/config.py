"""TrainConfig: every setting of a training run, with its defaults (saved in each checkpoint)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from isnet.compilation import COMPILE_MODES
from isnet.models import MODEL_NAMES
from isnet.training.balance import GRADIENT_BALANCES

TRAINING_METHODS: tuple[str, ...] = ("standard", "all", "selective", "stochastic", "rrr", "gain",
                                     "gradient_input", "unet_segment", "unet_multitask", "vit",
                                     "ag_sononet", "ham", "background_swap", "background_random",
                                     "isnet_swap", "swap_consistency")
"""Training methods: plain cross-entropy, an ISNet explaining all / selective / stochastic maps,
or one of the paper's comparison methods and the mask-based background baselines
(:mod:`isnet.training.methods`)."""

ISNET_METHODS: tuple[str, ...] = ("all", "selective", "stochastic")
"""The methods trained with the LRP heatmap loss ``(1 − P)·CE + P·L_heatmap``."""

HEATMAP_LOSS_METHODS: tuple[str, ...] = (*ISNET_METHODS, "gradient_input", "isnet_swap")
"""Methods trained with ``(1 − P)·CE + P·L_heatmap`` on any map (LRP or gradient × input)."""

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
"""Optimisers a run can use (:func:`isnet.training.loop.make_optimizer`)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved in the checkpoint).

    Attributes:
        model: registry name of the network (``isnet.MODEL_NAMES``).
        num_classes: number of logits K.
        method: the training method, one of :data:`TRAINING_METHODS` (see
            :mod:`isnet.training.loop`).
        epochs: passes over the training set.
        batch_size: images per step.
        learning_rate: the optimiser's learning rate.
        momentum: SGD momentum, or AdamW's β₁ (the first moment's decay; AdamW's usual 0.9).
        weight_decay: weight decay (0 in the paper): L2 for SGD, decoupled for AdamW.
        optimizer: ``"sgd"`` (the authors' choice) or ``"adamw"`` (Loshchilov & Hutter; β₂ =
            0.999). AdamW scales each parameter's step by its own gradient history, so the
            heatmap loss's large gradient (see ``grad_clip_norm``) does not crowd classification
            out of a shared step size; it wants a learning rate near 1e-3, not SGD's 1e-2.
            Measured on the bundled experiment (``docs/training-isnet.md``): with the selective
            variant it read the corner mark on part of the images (run 10: 14 points between
            biased and confounding data); with the stochastic variant it kept the mark out and
            reached 96–99 % of the ceiling (run 13), the bundled ISNet's recipe.
        heat_weight: P, the heatmap-loss share in ``(1 − P)·CE + P·L`` (paper: 0.7).
        decay: d, the GWRP decay of the background term (paper: 0.9; higher = smoother, more
            stable; lower = closer to a max, more bias resistance).
        epsilon: ε of the LRP ε-rule (paper code: 0.01).
        zb: z^B rule at the input layer (images in [0, 1]).
        background_weight: w₁ of the heatmap loss.
        foreground_weight: w₂ of the heatmap loss.
        foreground_range: (C1, C2), band for the total foreground relevance.
        saturation: E in ``log(1 + g/E)``.
        foreground_form: ``"l2"`` (original ISNet) or ``"hybrid"`` (Faster ISNet).
        grad_clip_norm: maximal gradient norm c (None = no clipping). 10 by default: the
            authors advise 1, but at 1 the ISNet's heatmap gradient (norm 50–800 early on) keeps
            every step clipped and classes are learned slowly; at 10 early steps are still
            clipped (so the shortcut is never learned) and later ones mostly are not (measured:
            ``docs/training-isnet.md``). At 100 the bundled recipe diverged.
        gradient_balance: how the ISNet's two gradients share a clipped step
            (:mod:`isnet.training.balance`): ``"joint"`` clips their sum (the authors'
            advice), ``"separate"`` clips ``(1 − P)·∇CE`` and ``P·∇L_heatmap`` each to c and adds
            them, so classification keeps a full step. ISNet methods only.
        heat_warmup_epochs: P rises linearly from 0 over this many epochs (0 = none).
        mask_margin: the heatmap loss grows each foreground mask by this many pixels first
            (:func:`isnet.loss.grow_masks`; 0 = the paper's loss), so that relevance the z^B
            rule puts on the dark pixels along the object's edge is not penalised. Measured on
            the bundled experiment (``docs/training-isnet.md``): 2 px raised unbiased accuracy
            from 71.0 to 74.2 % with no gap between biased and confounding data. ISNet methods.
        background_tint: probability that a training image's background is replaced by a random
            colour for one step (:mod:`isnet.training.augment`; 0 = never). LRP cannot see a
            whole-background colour change, so the heatmap loss alone does not make an ISNet
            robust to one. Measured (``docs/training-isnet.md``): at 0.5 the drops under planted
            tints and textures were 42.7 and 30.7 points (48–57 and 23–33 without); a fixed half
            of the images tinted in the planted class colours brought them to 5.2 and 7.5.
            Any method.
        seed: seeds weights order, shuffling and the stochastic variant.
        input_size: image side in pixels the model is trained at.
        divergence_ratio: with ``divergence_patience``: the run has diverged when the step loss
            stays above this multiple of the first step's loss for that many steps in a row.
            (Single spikes are normal for ISNets and are absorbed by gradient clipping.)
        divergence_patience: consecutive high-loss steps that count as divergence. A
            non-finite loss or gradient counts at once.
        recalibrate_batchnorm: after each epoch, re-estimate every BatchNorm's running mean and
            variance as exact averages over the training images (no gradients; training itself
            is unchanged, as train-mode BatchNorm uses batch statistics). Fast-moving weights
            leave the default running averages stale; on the demo ISNet run eval-mode accuracy
            fell to chance without this.
        schedule: learning-rate schedule per step: ``"constant"`` (the authors' default) or
            ``"cosine"`` (decays to 0 at the last step).
        deterministic: run under ``torch.use_deterministic_algorithms(True)`` (the authors'
            advice; on CUDA also sets ``CUBLAS_WORKSPACE_CONFIG``). The switch is process-wide
            and stays on after the run.
        rrr_weight: λ of RRR's background input-gradient penalty (method ``"rrr"``); Ross et
            al. choose it so that both terms are of similar size. Measured on DenseNet121: the
            penalty is ~30–80 per image when fresh (64 px) and ~300–900 while training on the
            32 px arena, against a CE of ~2.3; there λ = 1 and 0.01 kept training at chance, so
            the default is 0.001 (the authors' P = 0.5 on a 1/B-scaled gradient at B = 32 is
            λ ≈ 0.0005).
        segmentation_weight: weight of the segmentation loss of the U-Net methods.
        normalisation: ((mean per channel), (std per channel)) the images were normalised with
            before the network (e.g. ImageNet's for torchvision weights), or None for raw [0, 1]
            pixels; sets the z^B bounds of the training heatmaps (:attr:`bounds`).
        compile: compile the ISNet walk with ``torch.compile`` in this mode (``"default"``,
            ``"reduce-overhead"`` for CUDA graphs, …; :mod:`isnet.compilation`), or None for
            eager (the default). Same results; a failed compile runs eagerly with one warning.
    """

    model: str = "densenet121"
    num_classes: int = 10
    method: str = "selective"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    heat_weight: float = 0.7
    decay: float = 0.9
    epsilon: float = 0.01
    zb: bool = True
    background_weight: float = 1.0
    foreground_weight: float = 3.0
    foreground_range: tuple[float, float] = (1.0, 25.0)
    saturation: float = 1.0
    foreground_form: str = "l2"
    grad_clip_norm: float | None = 10.0
    gradient_balance: str = "joint"
    heat_warmup_epochs: int = 0
    mask_margin: int = 0
    background_tint: float = 0.0
    seed: int = 0
    input_size: int = 64
    divergence_ratio: float = 100.0
    divergence_patience: int = 10
    recalibrate_batchnorm: bool = True
    schedule: str = "constant"
    deterministic: bool = False
    rrr_weight: float = 0.001
    segmentation_weight: float = 1.0
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    compile: str | None = None

    def __post_init__(self) -> None:
        """Reject settings that cannot train, naming the field and what is allowed.

        Every number must be finite and inside its range (:data:`NUMBER_RANGES`); nothing is
        silently replaced (whole floats such as ``5.0`` for an integer field are stored as
        ``5``).
        """
        if self.model not in MODEL_NAMES:
            raise ValueError(f"TrainConfig.model {self.model!r} unknown; choose one of "
                             f"{', '.join(MODEL_NAMES)}")
        if self.method not in TRAINING_METHODS:
            raise ValueError(f"TrainConfig.method {self.method!r} unknown; choose one of "
                             f"{', '.join(TRAINING_METHODS)}")
        _check_numbers(self)
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ValueError(f"TrainConfig.compile must be None or one of "
                             f"{', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"TrainConfig.schedule must be 'constant' or 'cosine', got "
                             f"{self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        if self.gradient_balance not in GRADIENT_BALANCES:
            raise ValueError(f"TrainConfig.gradient_balance must be one of "
                             f"{', '.join(GRADIENT_BALANCES)}, got {self.gradient_balance!r}")
        if self.gradient_balance != "joint" and self.method not in ISNET_METHODS:
            raise ValueError(f"TrainConfig.gradient_balance {self.gradient_balance!r} needs an "
                             f"ISNet method ({', '.join(ISNET_METHODS)}), got {self.method!r}; "
                             f"use 'joint'")
        if self.foreground_form not in ("l2", "hybrid"):
            raise ValueError(f"TrainConfig.foreground_form must be 'l2' or 'hybrid', got "
                             f"{self.foreground_form!r}")

    def heatmap_loss_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`isnet.heatmap_loss` / :func:`isnet.isnet_loss`."""
        return dict(background_weight=self.background_weight,
                    foreground_weight=self.foreground_weight,
                    foreground_range=tuple(self.foreground_range), saturation=self.saturation,
                    decay=self.decay, foreground_form=self.foreground_form,
                    mask_margin=self.mask_margin)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of every field."""
        return json_ready(asdict(self))

    @property
    def bounds(self) -> tuple[Any, Any]:
        """The z^B input range (low, high) of the images the model sees: (0, 1) for raw pixels,
        ``(0 − mean) / std`` and ``(1 − mean) / std`` per channel with ``normalisation``."""
        if self.normalisation is None:
            return 0.0, 1.0
        from isnet.data.transforms import normalised_bounds  # torchvision only when normalised

        return normalised_bounds(*self.normalisation)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ValueError naming them.

        Checkpoints written by version 0.1 call the training method ``variant``; it is read as
        ``method``.
        """
        values = dict(values)
        if "variant" in values and "method" not in values:
            values["method"] = values.pop("variant")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {unknown}")
        values = dict(values)
        if values.get("normalisation") is not None:
            mean, std = values["normalisation"]
            values["normalisation"] = (tuple(mean), tuple(std))
        if "foreground_range" in values:
            values["foreground_range"] = tuple(values["foreground_range"])
        return cls(**values)


def json_ready(value: Any) -> Any:
    """Tuples (at any depth) as lists, for JSON."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_ready(item) for item in value]
    return value


NUMBER_RANGES: dict[str, tuple[type, float, float, str]] = {
    "num_classes": (int, 1, 100_000, "[]"),
    "epochs": (int, 1, 1_000, "[]"),
    "batch_size": (int, 1, 4_096, "[]"),
    "input_size": (int, 1, 4_096, "[]"),
    "divergence_patience": (int, 1, 1_000_000, "[]"),
    "heat_warmup_epochs": (int, 0, 1_000, "[]"),
    "mask_margin": (int, 0, 1_000, "[]"),
    "seed": (int, -(2**63), 2**63 - 1, "[]"),
    "learning_rate": (float, 0.0, 10.0, "(]"),
    "momentum": (float, 0.0, 1.0, "[)"),
    "weight_decay": (float, 0.0, 1.0, "[]"),
    "heat_weight": (float, 0.0, 1.0, "[]"),
    "background_tint": (float, 0.0, 1.0, "[]"),
    "decay": (float, 0.0, 1.0, "[)"),
    "epsilon": (float, 0.0, 100.0, "(]"),
    "background_weight": (float, 0.0, 1e6, "[]"),
    "foreground_weight": (float, 0.0, 1e6, "[]"),
    "saturation": (float, 0.0, 1e6, "(]"),
    "grad_clip_norm": (float, 0.0, 1e6, "(]"),
    "divergence_ratio": (float, 1.0, 1e12, "(]"),
    "rrr_weight": (float, 0.0, 1e6, "[]"),
    "segmentation_weight": (float, 0.0, 1e6, "[]"),
}
"""Field → (type, low, high, brackets): the allowed values of each numeric TrainConfig field
(``"(]"`` excludes the low end, ``"[)"`` the high end). Any other float field must be finite."""


def _number(name: str, value: Any, kind: type) -> int | float:
    """``value`` as a finite ``kind``; a ValueError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"TrainConfig.{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"TrainConfig.{name} must be a finite number, got {value}")
    if kind is int:
        if not float(value).is_integer():
            raise ValueError(f"TrainConfig.{name} must be a whole number, got {value}")
        return int(value)
    return float(value)


def _check_numbers(config: TrainConfig) -> None:
    """Check every numeric field of ``config`` (finite, in range) and store it as int/float."""
    for item in fields(config):
        value, bounds = getattr(config, item.name), NUMBER_RANGES.get(item.name)
        if bounds is None:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TrainConfig.{item.name} must be a finite number, got {value}")
            if item.type in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"TrainConfig.{item.name} must be True or False, got {value!r}")
            continue
        if value is None and item.name == "grad_clip_norm":
            continue
        kind, low, high, brackets = bounds
        number = _number(item.name, value, kind)
        above = number > low if brackets[0] == "(" else number >= low
        below = number < high if brackets[1] == ")" else number <= high
        if not (above and below):
            raise ValueError(f"TrainConfig.{item.name} must lie in {brackets[0]}{low:g}, "
                             f"{high:g}{brackets[1]}, got {number:g}")
        object.__setattr__(config, item.name, number)
    _check_foreground_range(config)


def _check_foreground_range(config: TrainConfig) -> None:
    values = config.foreground_range
    if not isinstance(values, (tuple, list)) or len(values) != 2:
        raise ValueError(f"TrainConfig.foreground_range must be two numbers (C1, C2), got "
                         f"{values!r}")
    low, high = (_number("foreground_range", v, float) for v in values)
    if not 0.0 <= low <= high <= 1e6:
        raise ValueError(f"TrainConfig.foreground_range (C1, C2) must satisfy 0 <= C1 <= C2 "
                         f"<= 1e6, got ({low:g}, {high:g})")
    object.__setattr__(config, "foreground_range", (low, high))
