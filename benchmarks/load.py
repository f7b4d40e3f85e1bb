"""Load benchmark of the served explorer, cached samples and new images side by side:
``python -m benchmarks.load [--clients 1 4 8] [--calls 20] [--no-batching] [--no-download]
[--verify-tls] [--out FILE]``.

Starts ``python app.py`` (bundled models) on free ports of 127.0.0.1 in subprocesses: one with
the Explain micro-batcher (:mod:`explorer.batching`, ``--explain-batch 8``) and one without it
(``--explain-batch 1``, the baseline of the same run; ``--no-batching`` starts only this one).
Each is warmed with one Explain. Then, for each client count N, on each server in turn, two
cases run back to back:

* **cached samples** — each call sends one of the bundled sample images (client i starts at
  sample i). ``app.py`` computes both default models' heatmaps of the samples before it serves
  (:func:`explorer.app.warm_up`), so these calls only draw, as a visitor clicking the samples
  gets;
* **new images** — every call sends an image the server has never seen (a sample with one pixel
  changed, never reused in the run), so nothing comes from a cache: the LRP work of a visitor's
  own upload.

N threads each hold their own ``gradio_client.Client`` (their own session) and call
``/explain`` ``--calls`` times; every answer's images are downloaded as a browser would fetch
them (unless ``--no-download``). Per case: calls, errors, median and 95th-percentile latency,
throughput (answered calls per second of wall time), CPU seconds per call of the server and of
the clients, the load average, and for the batched server the throughput ratio against the
unbatched one at the same N and case.

The clients talk plain ``http://`` with ``ssl_verify=False`` (``--verify-tls`` keeps
``gradio_client``'s default): ``gradio_client`` opens a new ``httpx`` client for every upload,
call and download, and with verification on each one builds a TLS context from the system's CA
bundle, even for ``http://`` where no TLS is spoken — about 57 ms of CPU each, taken from the
cores the server needs.

The run record (:mod:`benchmarks.record`: command, machine, versions, load average before and
after) goes to ``results/load/<date>-<machine>.json``. On a shared machine other processes
inflate every wall-clock number; the load average beside each row says how busy it was.

Goals: issue 12 (cached samples, 8 clients): 0 errors, p95 ≤ 1.5 s, ≥ 8 explains/s; issue 35
(new images, 8 clients): ≥ 4 explains/s, p95 ≤ 2.5 s. The benchmark reports; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import math
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

from benchmarks.record import finish_record, load_average, start_record

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"batched": ["--explain-batch", "8"], "unbatched": ["--explain-batch", "1"]}
"""Server name → ``app.py`` flags: with the Explain micro-batcher, and the baseline without."""
CASES = ("cached samples", "new images")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the system just reported free."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, temp_dir: str, flags: list[str] | None = None,
              timeout_s: float = 300.0) -> subprocess.Popen:
    """``python app.py [flags]`` on ``port``, once it answers HTTP (raises if it exits or times
    out)."""
    env = {**os.environ, "GRADIO_TEMP_DIR": temp_dir, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port",
                                str(port), *(flags or [])], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    0, that many distinct images instead (the samples in turn, each with a corner changed,
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
            # a 2 × 2 corner: a 128 px sample shrunk to 64 px keeps the change in one pixel
            pixels[:2, :2] = (index % 256, index // 256 % 256, 255 - index % 256)
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
            "load_average": load_average(), "first_error": errors[0] if errors else ""}


def run_case(url: str, case: str, clients: int, args: argparse.Namespace, editors: dict,
             server_pid: int, first: int) -> dict:
    """One row: ``clients`` × ``args.calls`` explains of ``case`` against one server."""
    row = run_clients(url, clients, args.calls, editors[case], not args.no_download, server_pid,
                      args.verify_tls, first if case == "new images" else 0)
    return {"case": case, **row}


def print_row(row: dict) -> None:
    """One Markdown table row (and the first error, if any)."""
    ratio = row.get("per_s_vs_unbatched")
    print(f"| {row['server']} | {row['case']} | {row['clients']} | {row['calls']} | "
          f"{row['errors']} | {row['median_s']:.3f} | {row['p95_s']:.3f} | {row['per_s']:.2f} | "
          f"{'' if ratio is None else f'{ratio:.2f}×'} | {row['server_cpu_s']:.3f} | "
          f"{row['client_cpu_s']:.3f} | {row['load_average']} |", flush=True)
    if row["first_error"]:
        print(f"  first error: {row['first_error']}")


def add_ratios(rows: list[dict]) -> None:
    """Each batched row's throughput against the unbatched row of the same case and N."""
    baseline = {(r["case"], r["clients"]): r["per_s"] for r in rows if r["server"] == "unbatched"}
    for row in rows:
        base = baseline.get((row["case"], row["clients"]))
        if row["server"] == "batched" and base:
            row["per_s_vs_unbatched"] = round(row["per_s"] / base, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--calls", type=int, default=20, help="explains per client and case")
    parser.add_argument("--no-batching", action="store_true",
                        help="start only the server without the micro-batcher (the baseline)")
    parser.add_argument("--no-download", action="store_true",
                        help="do not fetch the answers' images (measures the server alone)")
    parser.add_argument("--verify-tls", action="store_true",
                        help="gradio_client's default ssl_verify=True: a TLS context with the CA "
                             "bundle per request, even over http://")
    parser.add_argument("--out", type=Path, help="the run record's path (default "
                        "results/load/<date>-<machine>.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print one table row per server, case and client count, and write
    the run record."""
    args = parse_args(argv)
    import gradio
    import gradio_client

    record = start_record("load", threads=1)
    record["machine"].update(gradio=gradio.__version__, gradio_client=gradio_client.__version__)
    names = ["unbatched"] if args.no_batching else list(SERVERS)
    record["settings"] = {"clients": args.clients, "calls_per_client": args.calls,
                          "download": not args.no_download, "ssl_verify": args.verify_tls,
                          "servers": {name: ["app.py", *SERVERS[name]] for name in names}}
    temp_dir = tempfile.mkdtemp(prefix="load-benchmark-")
    servers: dict[str, subprocess.Popen] = {}
    rows: list[dict] = []
    try:
        urls = {}
        for name in names:
            port = free_port()
            servers[name] = start_app(port, temp_dir, SERVERS[name])
            urls[name] = f"http://127.0.0.1:{port}/"
        editors = {"cached samples": sample_editors(),
                   "new images": sample_editors(sum(args.clients) * args.calls, temp_dir)}
        for name in names:
            run_clients(urls[name], 1, 2, editors["cached samples"], False)  # warm-up
        print(f"servers {urls}; load average before: {record['load_average_before']}")
        print("| server | case | clients | calls | errors | median s | p95 s | explains/s "
              "| vs unbatched | server CPU s/call | client CPU s/call | load average |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        first = 0
        for clients in args.clients:
            for name in reversed(names):  # the baseline first, then the batched server
                for case in CASES:
                    row = {"server": name, **run_case(urls[name], case, clients, args, editors,
                                                      servers[name].pid, first)}
                    rows.append(row)
                    add_ratios(rows)
                    print_row(row)
            first += clients * args.calls
    finally:
        for process in servers.values():
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    record["rows"] = [{key: None if isinstance(value, float) and math.isnan(value) else value
                       for key, value in row.items()} for row in rows]  # strict JSON: no NaN
    record["goals"] = {"cached samples, 8 clients (issue 12)": "0 errors, p95 <= 1.5 s, "
                       ">= 8 explains/s", "new images, 8 clients (issue 35)":
                       ">= 4 explains/s, p95 <= 2.5 s"}
    finish_record(record, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
