"""Memory of the serving process around fine-tunes:
``python -m benchmarks.serving_memory [--runs 4] [--epochs 1]``.

Builds the explorer's context with the bundled models (as ``python app.py`` does), explains one
sample (idle), then runs ``--runs`` fine-tunes of the standard model on the bundled samples
through the Fine-tune handler (each in its worker process) and prints the resident memory
(VmRSS) of this process after each, and after the session ended. Each kept fine-tuned model
legitimately adds its own size (a DenseNet121 is about 28 MB) until its session ends. Goal
(issue 12): within 300 MB of idle after each fine-tune. Reports; asserts nothing; the figures go
to the run record (:mod:`benchmarks.record`), ``results/serving_memory/<date>-<machine>.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """This process's resident memory in MB (VmRSS from /proc)."""
    line = next(row for row in Path("/proc/self/status").read_text().splitlines()
                if row.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="the run record (default "
                        "results/serving_memory/<date>-<machine>.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="serving-memory-"))
    import torch

    torch.set_num_threads(1)
    from benchmarks.record import finish_record, start_record

    record = start_record("serving_memory", threads=1)
    record["settings"] = {"runs": args.runs, "epochs": args.epochs}
    from explorer.app import make_context
    from explorer.handlers import train as handlers_train
    from explorer.handlers.explain import ExplainRequest, explain
    from explorer.handlers.image import load_sample
    from explorer.media.editor import EditorInput, editor_value

    ctx = make_context()
    sample = load_sample(ctx, ctx.samples[0].name)
    explain(ctx, "bench", ExplainRequest(EditorInput(editor_value(sample.image, sample.mask)),
                                         *ctx.default_pair))
    idle = rss_mb()
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"idle (after one explain): {idle:.0f} MB")
    runs = []
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        updates = list(handlers_train.fine_tune(ctx, "bench", handlers_train.FineTuneRequest(
            base_id="standard", epochs=args.epochs)))
        seconds, listed = time.perf_counter() - started, bool(updates[-1].entry)
        print(f"after fine-tune {run}: {rss_mb():.0f} MB ({rss_mb() - idle:+.0f} MB), "
              f"{seconds:.0f} s, {'listed' if listed else 'not listed'}", flush=True)
        runs.append({"run": run, "rss_mb": round(rss_mb()), "over_idle_mb": round(rss_mb() - idle),
                     "seconds": round(seconds, 1), "listed": listed})
    ctx.sessions.forget("bench")
    handlers_train.release_memory()
    print(f"after the session ended: {rss_mb():.0f} MB ({rss_mb() - idle:+.0f} MB)")
    record.update(idle_mb=round(idle), after_fine_tunes=runs, after_session_mb=round(rss_mb()),
                  goal="within 300 MB of idle after each fine-tune",
                  goal_met=all(r["over_idle_mb"] <= 300 for r in runs))
    finish_record(record, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
