"""The Bias lab's test-set experiment: what unseen background changes cost each model.

For the bundled Fashion-MNIST test images (at each model's input size), every bias kind is
planted with a random other class into the background (:mod:`isnet.training.robustness`); a
model's drop for a kind is its accuracy on the clean images minus its accuracy on the planted
ones, in points. A model that decides by the object alone drops 0 points for every kind. The
result is kept as the session's "robustness" view, so Export can save it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from explorer.entries import ModelEntry
from explorer.errors import InputError
from explorer.handlers.export import record_view
from explorer.media.tensors import normalise
from explorer.state import AppContext
from isnet.data.bias.config import BIAS_KINDS
from isnet.data.fashion_mnist import FASHION_MNIST_CLASSES
from isnet.training.experiment import ExperimentData
from isnet.training.robustness import robustness

MAX_IMAGES = 1000
"""Most test images per run at 64 px: 6 passes over 1,000 images take a DenseNet121 ~40 s on 2
cores. Larger inputs get proportionally fewer (:func:`most_images`)."""
HEADERS = ["Model", "Clean accuracy %", *(f"{kind}: drop (points)" for kind in BIAS_KINDS)]


@dataclass(frozen=True)
class RobustnessRequest:
    """What the "Measure robustness" button sends.

    Attributes:
        model_ids: the models to measure (store ids; duplicates measured once).
        images: bundled test images (1 … :data:`MAX_IMAGES`).
    """

    model_ids: tuple[str, ...]
    images: int = 200


@dataclass
class RobustnessView:
    """The result: one table row per model (:data:`HEADERS` order) and the raw numbers.

    Attributes:
        rows: cells per model.
        results: model label → :func:`isnet.training.robustness.robustness`'s dict.
        markdown: the table with a one-line reading guide.
    """

    rows: list[list] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)
    markdown: str = ""


def most_images(entry: ModelEntry) -> int:
    """The most test images for a model: :data:`MAX_IMAGES` at 64 px, fewer for larger inputs
    (the same number of pixels), at least 20."""
    return max(20, int(MAX_IMAGES * (64 / max(entry.input_size, 64)) ** 2))


def _check(entry: ModelEntry, images: int) -> None:
    if list(entry.class_names) != list(FASHION_MNIST_CLASSES):
        raise InputError(f"{entry.label} knows other classes than Fashion-MNIST's ten, so the "
                         "bundled test images cannot measure it; fine-tune it on Fashion-MNIST "
                         "or choose a bundled model.")
    if images > most_images(entry):
        raise InputError(f"{entry.label} sees {entry.input_size} px images; measure it on at "
                         f"most {most_images(entry)} test images.")


def measure(ctx: AppContext, session: str | None, request: RobustnessRequest) -> RobustnessView:
    """Each model's clean accuracy and its drop under every planted kind.

    Raises:
        InputError: no model, too many or too few images, a model of other classes, or test
            images that cannot be read here.
    """
    if not 1 <= int(request.images) <= MAX_IMAGES:
        raise InputError(f"Take between 1 and {MAX_IMAGES} test images.")
    entries = [ctx.store.get(model_id, session) for model_id in dict.fromkeys(request.model_ids)]
    if not entries:
        raise InputError("Choose a model first.")
    for entry in entries:
        _check(entry, int(request.images))
    view = RobustnessView()
    for entry in entries:
        data = ExperimentData(size=entry.input_size, test_limit=int(request.images))
        try:
            result = robustness(entry.model, data, BIAS_KINDS,
                                transform=lambda x, e=entry: normalise(x, e.normalisation))
        except (OSError, ValueError) as error:
            raise InputError(f"The bundled test images cannot be read here: {error}") \
                from error
        name = entry.label if entry.label not in view.results else \
            f"{entry.label} ({entry.model_id})"  # two models with one label keep both rows
        view.results[name] = result
        clean = next(iter(result.values()))["clean"]
        view.rows.append([name.replace("|", "/"), round(100 * clean, 1),
                          *(result[kind]["drop_points"] for kind in BIAS_KINDS)])
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * (len(HEADERS) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in view.rows]
    view.markdown = (f"{int(request.images)} bundled test images, each kind planted with a "
                     "random other class (local marks at random places). *Clean* is the same "
                     "images without any mark (a model that needs its training mark is near "
                     "chance there). A model that decides by the object drops 0 points.\n\n"
                     + "\n".join(lines))
    record_view(ctx, session, "robustness", "Robustness to unseen background changes",
                {"per_model": {label: {kind: values["drop_points"]
                                       for kind, values in result.items()}
                               for label, result in view.results.items()}},
                {"images": int(request.images), "kinds": list(BIAS_KINDS),
                 "planted": "random other class, local kinds at random places"},
                entries, [], None, table=(HEADERS, view.rows))
    return view
