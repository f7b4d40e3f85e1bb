"""Command line audit of a dataset: ``python -m isnet.audit --data PATH --checkpoint FILE [FILE]
--out DIR``.

For each checkpoint it streams the dataset from disk (any layout of :mod:`isnet.data.layouts`;
masks optional) in the checkpoint's own input size, normalisation and resizing (the transforms
a ``--data`` run recorded; torchvision's resize and centre crop for ImageNet weights),
explains every image's predicted class with LRP (the z^B bounds of that normalisation) on
``--device``, and writes to ``DIR``:

* ``<checkpoint>/per_image.csv`` — file, true class, prediction, confidence, background share
  (empty without a mask), correct;
* ``<checkpoint>/classes.csv`` — per class: images, accuracy, mean and median share, images
  above the reliance threshold;
* ``<checkpoint>/strategies.json`` — SpRAy strategies per predicted class on 16 px maps (a seeded
  sample of at most ``--spray-limit`` maps per class);
* ``summary.json`` — the above in one file with the command, device and skipped files;
* ``report.html`` — one offline page (:func:`isnet.io.export.write_report`, as the explorer's
  report): the summaries, the most background-reliant images with their heatmaps, and each
  class's strategies.

Only small per-image results are kept (:mod:`isnet.analysis.stream_audit`), so memory does not
grow with the dataset. Existing files in ``DIR`` are never replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from isnet.analysis.audit import lrp_explainer
from isnet.analysis.audit_summary import (
    RELIANCE_THRESHOLD,
    class_strategies,
    class_summaries,
    overall,
)
from isnet.analysis.stream_audit import audit_stream
from isnet.data.dataset_splits import open_evaluation
from isnet.data.transforms import preprocessing_of
from isnet.devices import DEVICE_CHOICES, choose_device, device_label
from isnet.io.atomic import write_atomically
from isnet.io.checkpoints import load_checkpoint
from isnet.io.export import write_json, write_report
from isnet.lrp.config import LRPConfig
from isnet.viz import heatmap_to_rgb, overlay, shared_scale

logger = logging.getLogger("isnet.audit")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m isnet.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder or CSV manifest")
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--layout", default="auto",
                        choices=["auto", "class-folders", "mask-tree", "manifest"])
    parser.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="audit only the first N images")
    parser.add_argument("--threshold", type=float, default=RELIANCE_THRESHOLD,
                        help="background share above which an image counts as reliant")
    parser.add_argument("--spray-limit", type=int, default=500,
                        help="maps clustered per class (a seeded sample beyond it)")
    parser.add_argument("--top", type=int, default=12, help="images shown in the report")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def audit_checkpoint(path: Path, args: argparse.Namespace, device: torch.device
                     ) -> dict[str, Any]:
    """Audit ``args.data`` with one checkpoint; returns its JSON-ready record (and, under
    ``"_audit"``, the :class:`StreamAudit` and names for the report)."""
    model, metadata = load_checkpoint(path)
    model = model.to(device)
    preprocessing = preprocessing_of(metadata, default_size=224)  # as recorded, or ImageNet's
    class_names = list(metadata["class_names"])
    dataset, problems = open_evaluation(args.data, preprocessing, class_names, args.layout)
    if args.limit is not None:
        dataset.catalogue = dataset.catalogue.subset(np.arange(min(args.limit, len(dataset))))
    for line in problems[:20]:
        logger.warning("left out: %s", line)
    trained = LRPConfig.as_trained(metadata.get("config"))
    low, high = metadata.get("bounds") or preprocessing.bounds()  # as recorded at training
    explainer = lrp_explainer(LRPConfig(epsilon=trained.epsilon, zb=trained.zb, low=low,
                                        high=high))
    with tqdm(total=len(dataset), desc=path.stem, unit="img") as bar:
        audit = audit_stream(model, dataset, args.batch_size, args.workers, explainer,
                             keep_top=args.top, mean=preprocessing.mean, std=preprocessing.std,
                             on_progress=lambda done, total: bar.update(done - bar.n))
    names = dataset.catalogue.names
    record = {"checkpoint": path.name, "model": metadata.get("model_name"),
              "preprocessing": preprocessing.describe(),
              "overall": overall(audit, args.threshold),
              "classes": class_summaries(audit, class_names, args.threshold),
              "strategies": class_strategies(audit, class_names, args.spray_limit),
              "left_out_while_listing": problems, "skipped": audit.skipped}
    logger.info("%s: %s", path.name, record["overall"])
    return {**record, "_audit": (audit, names, class_names)}


def write_results(folder: Path, record: dict[str, Any], overwrite: bool) -> None:
    """``per_image.csv``, ``classes.csv`` and ``strategies.json`` of one checkpoint."""
    audit, names, class_names = record["_audit"]
    rows = [["file", "label", "prediction", "confidence", "background_share", "correct"]]
    for i in range(len(audit)):
        share = audit.background_share[i]
        rows.append([names[audit.indices[i]], class_names[audit.labels[i]],
                     class_names[audit.predictions[i]], f"{audit.confidence[i]:.6f}",
                     "" if np.isnan(share) else f"{share:.6f}",
                     str(int(audit.labels[i] == audit.predictions[i]))])
    write_atomically(folder / "per_image.csv", _csv(rows), overwrite=overwrite)
    header = ["class", "images", "accuracy", "mean_share", "median_share", "reliant"]
    write_atomically(folder / "classes.csv", _csv([header] + [[row[k] for k in header]
                                                               for row in record["classes"]]),
                     overwrite=overwrite)
    write_json(folder / "strategies.json", {"strategies": record["strategies"]},
               overwrite=overwrite)


def report_sections(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's sections for one checkpoint."""
    audit, names, class_names = record["_audit"]
    name = record["checkpoint"]
    sections: list[dict[str, Any]] = [
        {"title": f"{name}: summary", "numbers": record["overall"]},
        {"title": f"{name}: per class", "numbers": {
            row["class"]: {k: v for k, v in row.items() if k != "class"}
            for row in record["classes"]}}]
    if audit.top:
        scale = shared_scale([entry.relevance for entry in audit.top])
        sections.append({"title": f"{name}: the most background-reliant images",
                         "text": "Red: evidence for the predicted class; blue: against. One "
                                 "colour scale for all pictures.",
                         "images": [(f"{names[e.index]}: {class_names[e.label]} → "
                                     f"{class_names[e.prediction]}, share {e.share:.2f}",
                                     overlay(e.picture, e.relevance, scale))
                                    for e in audit.top]})
    for entry in record["strategies"]:
        images = [(f"cluster {i}: {c['size']} images, mean share "
                   f"{'–' if c['mean_share'] is None else format(c['mean_share'], '.2f')}",
                   np.kron(heatmap_to_rgb(c["mean_map"], 1.0), np.ones((8, 8, 1), np.uint8)))
                  for i, c in enumerate(entry["clusters"])]
        sections.append({"title": f"{name}: strategies for predictions of {entry['class']}",
                         "text": f"SpRAy on {entry['clustered']} of {entry['predicted']} maps.",
                         "images": images})
    return sections


def _csv(rows: list[list[Any]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Audit every checkpoint and write the results (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = choose_device(args.device)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if (args.out / "summary.json").exists() and not args.overwrite:
        raise SystemExit(f"{args.out} already holds an audit; pass --overwrite or choose "
                         "another --out")
    records = []
    for path in args.checkpoint:
        record = audit_checkpoint(path, args, device)
        write_results(args.out / path.stem, record, args.overwrite)
        records.append(record)
    public = [{**{k: v for k, v in record.items() if k not in ("_audit", "strategies")},
               "strategies": [{**entry, "clusters": [{k: v for k, v in cluster.items()
                                                      if k != "mean_map"}
                                                     for cluster in entry["clusters"]]}
                              for entry in record["strategies"]]} for record in records]
    write_json(args.out / "summary.json", {
        "command": "python -m isnet.audit " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": str(args.data), "device": device_label(device), "checkpoints": public},
        overwrite=args.overwrite)
    sections = [section for record in records for section in report_sections(record)]
    write_report(args.out / "report.html", f"Audit of {args.data.name}", sections,
                 overwrite=args.overwrite)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
