"""Load benchmark of the served explorer:
``python -m benchmarks.load [--clients 1 4 8] [--calls 20] [--no-download] [--unique]
[--verify-tls]``.

Starts ``python app.py`` (bundled models) on a free port of 127.0.0.1 in a subprocess, waits for
it, warms it with one Explain, then for each client count N runs N threads, each with its own
``gradio_client.Client`` (its own session), each calling ``/explain`` ``--calls`` times on the
bundled sample images in turn (client i starts at sample i). Every answer's images are downloaded
as a browser would fetch them (unless ``--no-download``). Printed per N: calls, errors, median
and 95th-percentile latency, throughput (answered calls per second of wall time), and the
machine's load average beside them (other processes on a shared machine inflate every number).

The clients talk plain ``http://`` with ``ssl_verify=False`` (``--verify-tls`` keeps
``gradio_client``'s default): ``gradio_client`` opens a new ``httpx`` client for every upload,
call and download, and with verification on each one builds a TLS context from the system's CA
bundle, even for ``http://`` where no TLS is spoken — about 57 ms of CPU each, 0.5 s per
explain with its nine requests, taken from the same two cores the server needs. ``--unique``
sends a different image on every call (one pixel changed), so no answer comes from the
explorer's caches.

Besides latency and throughput it prints the CPU seconds per call of the server process (when
the benchmark started it) and of the clients, which depend much less on what else runs on the
machine than wall-clock numbers do.

``app.py`` computes both default models' heatmaps of the bundled samples before it serves
(:func:`explorer.app.warm_up`), so without ``--unique`` every call draws from cached maps, as a
visitor clicking the samples gets.

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_editors(unique: int = 0, folder: str | None = None) -> list[dict]:
    """Editor values (image file, no mask) for every bundled sample image; with ``unique`` >
    0, that many distinct images instead (the samples in turn, each with one pixel changed,
    written to ``folder``)."""
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    images = sorted((ROOT / "assets" / "images").glob("*.png"))
    paths = [str(path) for path in images]
    if unique:
        paths = []
        for index in range(unique):
            pixels = np.array(Image.open(images[index % len(images)]).convert("RGB"))
            pixels[0, 0] = (index % 256, index // 256 % 256, 255 - index % 256)
            path = Path(folder or tempfile.mkdtemp()) / f"unique-{index}.png"
            Image.fromarray(pixels).save(path)
            paths.append(str(path))
    return [{"background": handle_file(path), "layers": [], "composite": None}
            for path in paths]


def explain_once(client, editor: dict) -> None:
    """One ``/explain`` call with the default pair of models."""
    client.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                   explain_class="predicted class", overlay_opacity=0.6, top_predictions=3,
                   api_name="/explain")


def run_clients(url: str, clients: int, calls: int, editors: list[dict],
                download: bool, server_pid: int | None = None, verify_tls: bool = False,
                first: int = 0) -> dict:
    """``clients`` threads × ``calls`` explains; latencies, errors, wall time and CPU time.

    Client ``i`` sends ``editors[first + i + j]`` (wrapping around) on its call ``j``.
    """
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    options = {} if verify_tls else {"ssl_verify": False}

    def client_loop(index: int) -> None:
        client = Client(url, verbose=False, download_files=tempfile.mkdtemp() if download
                        else False, **options)
        ready.wait()
        for call in range(calls):
            started = time.perf_counter()
            try:
                explain_once(client, editors[(first + index + call * clients) % len(editors)])
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
    cpu_before = (time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0)
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before[0]
    server_cpu = cpu_seconds(server_pid) - cpu_before[1] if server_pid else float("nan")
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered \
        else float("nan")
    return {"clients": clients, "calls": clients * calls, "errors": len(errors),
            "median_s": statistics.median(ordered) if ordered else float("nan"),
            "p95_s": p95, "per_s": len(latencies) / wall, "wall_s": wall,
            "server_cpu_s": server_cpu / (clients * calls),
            "client_cpu_s": client_cpu / (clients * calls),
            "load": load_average(), "first_error": errors[0] if errors else ""}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table row per client count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--calls", type=int, default=20, help="explains per client")
    parser.add_argument("--no-download", action="store_true",
                        help="do not fetch the answers' images (measures the server alone)")
    parser.add_argument("--url", help="benchmark a running explorer instead of starting one")
    parser.add_argument("--unique", action="store_true",
                        help="a different image on every call (nothing comes from a cache)")
    parser.add_argument("--verify-tls", action="store_true",
                        help="gradio_client's default ssl_verify=True: a TLS context with the CA "
                             "bundle per request, even over http://")
    args = parser.parse_args(argv)
    process = None
    temp_dir = tempfile.mkdtemp(prefix="load-benchmark-")
    try:
        url = args.url
        if url is None:
            port = free_port()
            process = start_app(port, temp_dir)
            url = f"http://127.0.0.1:{port}/"
        total = 2 + sum(args.clients) * args.calls
        editors = sample_editors(total if args.unique else 0, temp_dir)
        download, pid = not args.no_download, process.pid if process else None
        run_clients(url, 1, 2, editors, download, verify_tls=args.verify_tls)  # warm-up
        print(f"explorer at {url}; load average before: {load_average()}; "
              f"{'unique images' if args.unique else 'the 10 samples in turn'}; "
              f"ssl_verify={args.verify_tls}")
        print("| clients | calls | errors | median s | p95 s | explains/s | server CPU s/call "
              "| client CPU s/call | load average |")
        print("|---|---|---|---|---|---|---|---|---|")
        first = 2
        for clients in args.clients:
            row = run_clients(url, clients, args.calls, editors, download, pid, args.verify_tls,
                              first)
            first += clients * args.calls
            print(f"| {row['clients']} | {row['calls']} | {row['errors']} | "
                  f"{row['median_s']:.3f} | {row['p95_s']:.3f} | {row['per_s']:.2f} | "
                  f"{row['server_cpu_s']:.3f} | {row['client_cpu_s']:.3f} | "
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
