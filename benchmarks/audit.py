"""Audit speed and how cleanly strategy discovery (SpRAy) finds the shortcut.

``python -m benchmarks.audit [--images 1000] [--threads 1] [--workers N] [--models standard isnet]
[--batch-sizes 64]``

Takes the bundled experiment's test images twice: with the class mark (biased split) and without
it (unbiased split), audits both halves with the bundled standard DenseNet121 (which learned the
mark) and the ISNet, and reports per model: seconds for the audit, images per second, the share of
the top-ranked half that carries a mark, and per class the number of strategies the eigengap
found and the adjusted Rand index (ARI) of the clusters against "has a mark" (1 = the clusters are
exactly marked / unmarked; 0 = no relation). Prints a Markdown table and writes the run record
(:mod:`benchmarks.record`) to ``results/audit/<date>-<machine>.json`` (with ``--app``:
``results/audit_app/``; ``--out`` to choose).

``--app`` times the explorer's own audit instead (``explorer.handlers.audit.run_audit``: both
bundled models on the bundled "mixed" split of 2 × ``--images`` images, with loading the set,
chunks, progress and writing the audit folder), as a user of the Audit tab waits for it, and
when the first model's results appear (they are shown while the second model runs).

``--layouts contiguous channels_last`` audits each model in each memory layout and adds the
time's ratio to the first layout's (measured in the same run); the default, ``auto``, is the
family's preferred layout (:mod:`isnet.models.layout`), as the explorer audits.
``--batch-sizes 16 32 64`` does the same for the images per batch (default 64, as the explorer):
each row's "× first" is its time over the model's first layout and batch size, same run.

``--threads`` is torch's threads per operation and ``--workers`` the batches explained at once,
each on its own thread (default: cores ÷ threads, as the explorer does; see
:mod:`isnet.analysis.workers`). ``--threads 2 --workers 1`` is how the audit ran before workers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

import isnet
from benchmarks.record import finish_record, start_record
from isnet.analysis.audit import audit_images, lrp_explainer, rank_by_background
from isnet.analysis.strategies import find_strategies
from isnet.analysis.workers import default_workers
from isnet.models.layout import LAYOUTS
from isnet.training.experiment import ExperimentData, evaluation_set

MODELS = {"standard": "assets/checkpoints/standard_densenet121.safetensors",
          "isnet": "assets/checkpoints/isnet_densenet121.safetensors"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="test images per half")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per operation")
    parser.add_argument("--workers", type=int, default=None,
                        help="batches at once (default: cores ÷ threads)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS),
                        help="which bundled models to audit (default: both)")
    parser.add_argument("--layouts", nargs="+", choices=["auto", *LAYOUTS], default=["auto"],
                        help="memory layouts to audit in (auto: the family's preferred one)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64],
                        help="images per batch to audit with (default: 64, as the explorer)")
    parser.add_argument("--app", action="store_true",
                        help="time the explorer's audit of both models (see above)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the run record (default results/audit/<date>-<machine>.json; "
                        "with --app results/audit_app/)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workers = args.workers or default_workers()
    print(f"torch threads {args.threads}, workers {workers}")
    record = start_record("audit_app" if args.app else "audit", threads=args.threads)
    record["settings"] = {**{k: v for k, v in vars(args).items() if k != "out"},
                          "workers": workers}
    if args.app:
        record["app"] = time_app(2 * args.images, workers)
    else:
        record["baseline"] = "each model's first layout and batch size, same run"
        record["rows"] = engine_rows(args, workers)
    finish_record(record, args.out)
    return 0


def engine_rows(args: argparse.Namespace, workers: int) -> list[dict[str, Any]]:
    """Audit the marked and clean halves with each model, layout and batch size; print a table.

    Returns:
        One dict per run: model, layout, batch, images, seconds, x_first (seconds over the
        model's first layout and batch size), images_per_s, marked_in_top_half,
        clusters_per_class, ari_mean, clustering_s.
    """
    data = ExperimentData(test_limit=args.images)
    marked, clean = evaluation_set(data, "biased"), evaluation_set(data, "unbiased")
    images = torch.cat([marked.images, clean.images])
    masks = torch.cat([marked.masks, clean.masks])
    labels = torch.cat([marked.labels, clean.labels])
    has_mark = np.r_[np.ones(len(marked)), np.zeros(len(clean))].astype(bool)
    print("| model | layout | batch | images | audit s | × first | images/s | marked in top half "
          "| clusters per class | ARI (clusters vs has-mark), mean over classes | clustering s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    first = 1.0  # the seconds of the model's first layout and batch size
    runs = [(n, layout, b) for n in args.models for layout in args.layouts
            for b in args.batch_sizes]
    rows = []
    for name, layout, batch in runs:
        model, metadata = isnet.load_checkpoint(MODELS[name])
        lrp = isnet.LRPConfig.as_trained(metadata.get("config"))  # as the app explains it
        start = time.perf_counter()
        result = audit_images(model, images, masks, labels, batch_size=batch,
                              explainer=lrp_explainer(lrp), workers=workers,
                              memory_format=LAYOUTS.get(layout))
        seconds = time.perf_counter() - start
        first = seconds if (layout, batch) == (args.layouts[0], args.batch_sizes[0]) else first
        top = rank_by_background(result)[: len(images) // 2].numpy()
        start = time.perf_counter()
        counts, scores = [], []
        for label in range(10):  # SpRAy per true class: marked and clean images of that class
            members = np.flatnonzero(labels.numpy() == label)
            if len(members) < 10:
                continue
            found = find_strategies(result.relevance[members], seed=0)
            counts.append(found.num_clusters)
            scores.append(adjusted_rand_score(has_mark[members], found.labels))
        row = {"model": name, "layout": layout, "batch": batch, "images": len(images),
               "seconds": round(seconds, 2), "x_first": round(seconds / first, 3),
               "images_per_s": round(len(images) / seconds, 1),
               "marked_in_top_half": round(float(has_mark[top].mean()), 3),
               "clusters_per_class": counts, "ari_mean": round(float(np.mean(scores)), 3),
               "clustering_s": round(time.perf_counter() - start, 2)}
        rows.append(row)
        print(f"| {name} | {layout} | {batch} | {len(images)} | {row['seconds']:.1f} | "
              f"{row['x_first']:.2f} | {row['images_per_s']:.0f} | "
              f"{row['marked_in_top_half']:.3f} | {counts} | {row['ari_mean']:.3f} | "
              f"{row['clustering_s']:.1f} |", flush=True)
    return rows


def time_app(images: int, workers: int) -> dict[str, Any]:
    """Seconds of the explorer's two-model audit of the "mixed" split, as the Audit tab runs it,
    and when the first model's results appeared."""
    import tempfile

    from explorer.app import make_context
    from explorer.handlers import audit as handler

    with tempfile.TemporaryDirectory() as folder:
        ctx = make_context(work_dir=folder)
        request = handler.AuditRequest(tuple(ctx.default_pair), source="mixed", limit=images)
        start, first = time.perf_counter(), None
        for last in handler.run_audit(ctx, "benchmark", request, workers=workers):
            if last.interim:  # the first model's results, shown while the second runs
                first = time.perf_counter() - start
        seconds = time.perf_counter() - start
    print(f"explorer audit, 2 models × {last.record['count']} images: {seconds:.1f} s "
          f"({last.status}); the first model's results shown after {first:.1f} s")
    return {"models": 2, "images": int(last.record["count"]), "seconds": round(seconds, 2),
            "first_model_shown_s": round(first, 2) if first is not None else None,
            "status": str(last.status)}


if __name__ == "__main__":
    raise SystemExit(main())
