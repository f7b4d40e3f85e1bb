"""The server's memory under hostile requests (issue 34):
``nice -n 19 python -m benchmarks.hostile_memory [--audit-images 500] [--loads 40]``.

Starts ``python app.py`` (the bundled models, on the CPU, one thread; :data:`SERVE`) on a free
loopback port as a child process, then sends it each hostile case through ``gradio_client``, one
case at a time, and reads the server's resident memory from ``/proc/<pid>/status``: before the case,
the peak during it (``VmHWM``, reset before each case by writing 5 to ``/proc/<pid>/clear_refs``;
a 20 Hz sampler of ``VmRSS`` as well, the larger is kept) and after it (two seconds after the
last answer). Cases:

* ``editor_layers`` — one ``/explain`` whose editor value holds 16 layers of a 40-megapixel
  transparent PNG;
* ``six_40mp_at_once`` — six 40-megapixel PNGs at once: two each to ``/explain``,
  ``/load_image`` and ``/mask_threshold``;
* ``stride_zero_pth`` — a small ``torch.save`` file whose stride-0 classifier declares 400,000
  classes, to ``/load_checkpoint``;
* ``deep_file`` — a float16 DenseNet checkpoint with one 1,500-layer block, to
  ``/load_checkpoint``;
* ``forty_loads`` — 40 raw-API ``/load_checkpoint`` calls of a bundled checkpoint, each from a new
  client (a new session);
* ``four_audits`` — four ``/audit`` runs of both default models on a bundled split.

Goal: every case refused or served within +500 MB peak and +100 MB after (over the memory
before the case). Each case records its answers (served / the refusal's first words). The run
record goes to ``results/hostile_memory/<date>-<machine>.json`` (:mod:`benchmarks.record`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

PEAK_GOAL_MB, AFTER_GOAL_MB = 500, 100
SERVE = ("import sys, runpy, gradio.networking as n; n.url_ok = lambda url: True; "
         "sys.argv = ['app.py', *sys.argv[1:]]; runpy.run_path('app.py', run_name='__main__')")
"""``python app.py`` as is, except Gradio's start-up probe of its own page (one 3-second HEAD
request, which a loaded machine can miss, and then Gradio refuses to serve locally)."""
ROOT = Path(__file__).resolve().parents[1]


def status_mb(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MB."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field):
            return int(row.split()[1]) / 1024
    return 0.0


class PeakWatch:
    """The server's peak resident memory over one case (``VmHWM`` after a reset, and a sampler)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._running = pid, 0.0, False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakWatch:
        with contextlib.suppress(OSError):  # resets VmHWM to VmRSS
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.peak, self._running = status_mb(self.pid, "VmRSS"), True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, status_mb(self.pid, "VmRSS"))
            time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, status_mb(self.pid, "VmHWM"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, folder: Path) -> subprocess.Popen:
    """``python app.py`` on ``port``; returns once it answers."""
    import httpx

    env = {**os.environ, "GRADIO_TEMP_DIR": str(folder / "gradio"), "OMP_NUM_THREADS": "1"}
    with open(folder / "server.log", "w") as log:  # the child keeps its own descriptor
        server = subprocess.Popen([sys.executable, "-c", SERVE, "--port", str(port),
                                   "--device", "cpu", "--threads", "1"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 900
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server ended (see {folder / 'server.log'})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError("the server did not answer within 15 minutes")


def outcome(call: Callable[[], object]) -> str:
    """"served", or "refused: <the message's first words>"."""
    try:
        call()
        return "served"
    except Exception as error:  # noqa: BLE001 — a refusal is a result here
        return "refused: " + " ".join(str(error).split())[:160]


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def explain(url: str, background: str, layers: list[str] = ()) -> object:
    from gradio_client import handle_file

    editor = {"background": handle_file(background),
              "layers": [handle_file(layer) for layer in layers], "composite": None}
    return client(url).predict(image_and_mask=editor, left_model="standard",
                               right_model="isnet", api_name="/explain")


def load_image(url: str, path: str) -> object:
    from gradio_client import handle_file

    return client(url).predict(handle_file(path), api_name="/load_image")


def mask_threshold(url: str, path: str) -> object:
    from gradio_client import handle_file

    editor = {"background": handle_file(path), "layers": [], "composite": None}
    return client(url).predict(image_and_mask=editor, api_name="/mask_threshold")


def load_checkpoint(url: str, path: str | None = None, bundled: str | None = None) -> object:
    from gradio_client import handle_file

    return client(url).predict(checkpoint_file=handle_file(path) if path else None,
                               display_name="", bundled_checkpoint=bundled,
                               api_name="/load_checkpoint")


def audit(url: str, images: int) -> object:
    return client(url).predict(model="standard", second_model="isnet", image_source="biased",
                               bundled_images=images, uploaded_zip=None, folder_path="",
                               mask_source="set", api_name="/audit")


def hostile_files(folder: Path) -> dict[str, str]:
    """The 40-megapixel pictures, the stride-0 file and the deep file."""
    import torch

    from isnet.io.checkpoints import save_checkpoint
    from isnet.models.densenet import tiny_densenet

    height, width = 6000, 6600  # 39.6 MP: under the 40 MP limit
    layer = np.zeros((height, width, 4), np.uint8)
    layer[:100, :100] = (0, 255, 0, 255)
    Image.fromarray(layer).save(folder / "layer40mp.png")
    picture = np.zeros((height, width, 3), np.uint8)
    picture[::50] = 200
    Image.fromarray(picture).save(folder / "picture40mp.png")
    state = tiny_densenet(num_classes=3).state_dict()
    features = state["classifier.weight"].shape[1]
    state["classifier.weight"] = torch.zeros(1, 1).expand(400_000, features)
    state["classifier.bias"] = torch.zeros(1).expand(400_000)
    torch.save(state, folder / "stride0.pth")
    torch.manual_seed(0)
    deep = tiny_densenet(block_config=(1500,), growth_rate=2, bn_size=1, num_init_features=4)
    save_checkpoint(folder / "deep.safetensors", deep, model_name="tiny_densenet",
                    class_names=["a", "b", "c"], input_size=32, half=True)
    return {"layer": str(folder / "layer40mp.png"), "picture": str(folder / "picture40mp.png"),
            "stride0": str(folder / "stride0.pth"), "deep": str(folder / "deep.safetensors")}


def run_case(pid: int, name: str, work: Callable[[], list[str]]) -> dict:
    """One case: memory before, peak, after (2 s after the last answer), and the answers."""
    before = status_mb(pid, "VmRSS")
    started = time.perf_counter()
    with PeakWatch(pid) as watch:
        answers = work()
    seconds = time.perf_counter() - started
    time.sleep(2.0)
    after = status_mb(pid, "VmRSS")
    case = {"case": name, "rss_before_mb": round(before), "rss_peak_mb": round(watch.peak),
            "rss_after_mb": round(after), "peak_over_before_mb": round(watch.peak - before),
            "after_over_before_mb": round(after - before), "seconds": round(seconds, 1),
            "answers": answers}
    case["goal_met"] = (case["peak_over_before_mb"] <= PEAK_GOAL_MB
                        and case["after_over_before_mb"] <= AFTER_GOAL_MB)
    verdict = "met" if case["goal_met"] else "MISSED"
    print(f"{name}: before {before:.0f} MB, peak {watch.peak - before:+.0f} MB, after "
          f"{after - before:+.0f} MB, {seconds:.0f} s, goal {verdict}; "
          f"{sorted(set(answers))[:3]}", flush=True)
    return case


def cases(url: str, files: dict[str, str], loads: int, audits: int,
          audit_images: int) -> dict[str, Callable[[], list[str]]]:
    """Each case as a function returning its answers."""
    picture = files["picture"]

    def at_once() -> list[str]:
        calls = [lambda: explain(url, picture), lambda: explain(url, picture),
                 lambda: load_image(url, picture), lambda: load_image(url, picture),
                 lambda: mask_threshold(url, picture), lambda: mask_threshold(url, picture)]
        with ThreadPoolExecutor(6) as pool:
            return list(pool.map(outcome, calls))

    bundled = "standard_densenet121.safetensors"
    return {
        "editor_layers": lambda: [outcome(lambda: explain(url, picture, [files["layer"]] * 16))],
        "six_40mp_at_once": at_once,
        "stride_zero_pth": lambda: [outcome(lambda: load_checkpoint(url, files["stride0"]))],
        "deep_file": lambda: [outcome(lambda: load_checkpoint(url, files["deep"]))],
        "forty_loads": lambda: [outcome(lambda: load_checkpoint(url, bundled=bundled))
                                for _ in range(loads)],
        "four_audits": lambda: [outcome(lambda: audit(url, audit_images))
                                for _ in range(audits)],
    }


def main(argv: list[str] | None = None) -> int:
    """Start the server, run every case, write the record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=40)
    parser.add_argument("--audits", type=int, default=4)
    parser.add_argument("--audit-images", type=int, default=500)
    parser.add_argument("--only", nargs="*", default=None, help="run only these cases")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from benchmarks.record import finish_record, start_record

    record = start_record("hostile_memory", threads=1)
    record["settings"] = {"loads": args.loads, "audits": args.audits,
                          "audit_images": args.audit_images, "server": "python app.py "
                          "--device cpu --threads 1 (bundled models)",
                          "peak_goal_mb": PEAK_GOAL_MB, "after_goal_mb": AFTER_GOAL_MB}
    folder = Path(tempfile.mkdtemp(prefix="hostile-memory-"))
    files = hostile_files(folder)
    port = free_port()
    server = start_server(port, folder)
    try:
        url = f"http://127.0.0.1:{port}/"
        outcome(lambda: explain(url, str(ROOT / "assets" / "images" /
                                         sorted(os.listdir(ROOT / "assets" / "images"))[0])))
        record["idle_rss_mb"] = round(status_mb(server.pid, "VmRSS"))
        print(f"idle: {record['idle_rss_mb']} MB; load average {os.getloadavg()}", flush=True)
        chosen = cases(url, files, args.loads, args.audits, args.audit_images)
        record["cases"] = [run_case(server.pid, name, work) for name, work in chosen.items()
                           if args.only is None or name in args.only]
        record["goal"] = (f"every case refused or served within +{PEAK_GOAL_MB} MB peak and "
                          f"+{AFTER_GOAL_MB} MB after")
        record["goal_met"] = all(case["goal_met"] for case in record["cases"])
    finally:
        server.terminate()
        server.wait(60)
    print(finish_record(record, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
