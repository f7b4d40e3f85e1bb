"""Load benchmark of the served explorer:
``python -m benchmarks.load [--clients 1 4 8] [--calls 20] [--no-download]``.

Starts ``python app.py`` (bundled models) on a free port of 127.0.0.1 in a subprocess, waits for
it, warms it with one Explain, then for each client count N runs N threads, each with its own
``gradio_client.Client`` (its own session), each calling ``/explain`` ``--calls`` times on the
bundled sample images in turn (client i starts at sample i). Every answer's images are downloaded
as a browser would fetch them (unless ``--no-download``). Printed per N: calls, errors, median
and 95th-percentile latency, throughput (answered calls per second of wall time), and the
machine's load average beside them (other processes on a shared machine inflate every number).

Goals from issue 12, on a 2-core machine with nothing else running: 0 errors in 8 × 20 calls,
p95 ≤ 1.5 s with 8 clients, ≥ 8 explains/s. The benchmark reports; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the system just reported free."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def start_app(port: int, temp_dir: str, timeout_s: float = 180.0) -> subprocess.Popen:
    """``python app.py`` on ``port``, once it answers HTTP (raises if it exits or times out)."""
    env = {**os.environ, "GRADIO_TEMP_DIR": temp_dir, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port",
                                str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"app.py did not answer within {timeout_s:.0f} s")


def sample_editors() -> list[dict]:
    """Editor values (image file, no mask) for every bundled sample image."""
    from gradio_client import handle_file

    images = sorted((ROOT / "assets" / "images").glob("*.png"))
    return [{"background": handle_file(str(path)), "layers": [], "composite": None}
            for path in images]


def explain_once(client, editor: dict) -> None:
    """One ``/explain`` call with the default pair of models."""
    client.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                   explain_class="predicted class", overlay_opacity=0.6, top_predictions=3,
                   api_name="/explain")


def run_clients(url: str, clients: int, calls: int, editors: list[dict],
                download: bool) -> dict:
    """``clients`` threads × ``calls`` explains; latencies, errors and wall time."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        client = Client(url, verbose=False, download_files=tempfile.mkdtemp() if download
                        else False)
        ready.wait()
        for call in range(calls):
            started = time.perf_counter()
            try:
                explain_once(client, editors[(index + call) % len(editors)])
            except Exception as error:  # noqa: BLE001 — counted and reported
                with lock:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered \
        else float("nan")
    return {"clients": clients, "calls": clients * calls, "errors": len(errors),
            "median_s": statistics.median(ordered) if ordered else float("nan"),
            "p95_s": p95, "per_s": len(latencies) / wall, "wall_s": wall,
            "load": load_average(), "first_error": errors[0] if errors else ""}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table row per client count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--calls", type=int, default=20, help="explains per client")
    parser.add_argument("--no-download", action="store_true",
                        help="do not fetch the answers' images (measures the server alone)")
    parser.add_argument("--url", help="benchmark a running explorer instead of starting one")
    args = parser.parse_args(argv)
    process = None
    temp_dir = tempfile.mkdtemp(prefix="load-benchmark-")
    try:
        url = args.url
        if url is None:
            port = free_port()
            process = start_app(port, temp_dir)
            url = f"http://127.0.0.1:{port}/"
        editors = sample_editors()
        run_clients(url, 1, 2, editors, not args.no_download)  # warm-up
        print(f"explorer at {url}; load average before: {load_average()}")
        print("| clients | calls | errors | median s | p95 s | explains/s | load average |")
        print("|---|---|---|---|---|---|---|")
        for clients in args.clients:
            row = run_clients(url, clients, args.calls, editors, not args.no_download)
            print(f"| {row['clients']} | {row['calls']} | {row['errors']} | "
                  f"{row['median_s']:.3f} | {row['p95_s']:.3f} | {row['per_s']:.2f} | "
                  f"{row['load']} |", flush=True)
            if row["first_error"]:
                print(f"  first error: {row['first_error']}")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
