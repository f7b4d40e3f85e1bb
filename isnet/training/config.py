"""TrainConfig: every setting of a training run, with its defaults (saved in each checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from isnet.models import MODEL_NAMES

TRAINING_METHODS: tuple[str, ...] = ("standard", "all", "selective", "stochastic", "rrr", "gain",
                                     "gradient_input", "unet_segment", "unet_multitask", "vit",
                                     "ag_sononet", "ham")
"""Training methods: plain cross-entropy, an ISNet explaining all / selective / stochastic maps,
or one of the paper's comparison methods (:mod:`isnet.training.methods`)."""



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
        learning_rate: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay (0 in the paper).
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
        grad_clip_norm: maximal gradient norm (None = no clipping).
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
        rrr_weight: λ of RRR's background input-gradient penalty (method ``"rrr"``); Ross et
            al. choose it so that both terms are of similar size. Measured on DenseNet121: the
            penalty is ~30–80 per image when fresh (64 px) and ~300–900 while training on the
            32 px arena, against a CE of ~2.3; there λ = 1 and 0.01 kept training at chance, so
            the default is 0.001 (the authors' P = 0.5 on a 1/B-scaled gradient at B = 32 is
            λ ≈ 0.0005).
        segmentation_weight: weight of the segmentation loss of the U-Net methods.
    """

    model: str = "densenet121"
    num_classes: int = 10
    method: str = "selective"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    heat_weight: float = 0.7
    decay: float = 0.9
    epsilon: float = 0.01
    zb: bool = True
    background_weight: float = 1.0
    foreground_weight: float = 3.0
    foreground_range: tuple[float, float] = (1.0, 25.0)
    saturation: float = 1.0
    foreground_form: str = "l2"
    grad_clip_norm: float | None = 1.0
    seed: int = 0
    input_size: int = 64
    divergence_ratio: float = 100.0
    divergence_patience: int = 10
    recalibrate_batchnorm: bool = True
    schedule: str = "constant"
    rrr_weight: float = 0.001
    segmentation_weight: float = 1.0

    def __post_init__(self) -> None:
        """Reject settings that cannot train, naming the field and a valid choice."""
        if self.model not in MODEL_NAMES:
            raise ValueError(f"TrainConfig.model {self.model!r} unknown; choose one of "
                             f"{', '.join(MODEL_NAMES)}")
        if self.method not in TRAINING_METHODS:
            raise ValueError(f"TrainConfig.method {self.method!r} unknown; choose one of "
                             f"{', '.join(TRAINING_METHODS)}")
        for name in ("num_classes", "epochs", "batch_size", "input_size", "divergence_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got "
                                 f"{getattr(self, name)}")
        if not 0.0 <= self.heat_weight <= 1.0:
            raise ValueError(f"TrainConfig.heat_weight (P) must lie in [0, 1], got "
                             f"{self.heat_weight}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"TrainConfig.decay (d) must lie in [0, 1), got {self.decay}")
        if self.learning_rate <= 0 or self.epsilon <= 0:
            raise ValueError("TrainConfig.learning_rate and epsilon must be positive")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"TrainConfig.schedule must be 'constant' or 'cosine', got "
                             f"{self.schedule!r}")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise ValueError("TrainConfig.grad_clip_norm must be positive or None")

    def heatmap_loss_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`isnet.heatmap_loss` / :func:`isnet.isnet_loss`."""
        return dict(background_weight=self.background_weight,
                    foreground_weight=self.foreground_weight,
                    foreground_range=tuple(self.foreground_range), saturation=self.saturation,
                    decay=self.decay, foreground_form=self.foreground_form)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of every field."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

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
        if "foreground_range" in values:
            values["foreground_range"] = tuple(values["foreground_range"])
        return cls(**values)
