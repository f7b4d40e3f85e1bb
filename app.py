"""Launch the ISNet Explorer: ``python app.py [--share] [--host H] [--port P]
[--checkpoint STANDARD ISNET] [--inbrowser] [--auth USER:PASSWORD | --auth-file FILE]
[--device auto|cpu|cuda|cuda:N] [--explain-batch N] [--compile [MODE]]``.

Exit status 2, with a one-line message and no traceback, when the explorer cannot start (a
checkpoint that cannot be used, a malformed ``--auth``, ``--device cuda`` on a machine without
a CUDA GPU).

This file only parses flags, builds the demo (:func:`explorer.app.build_demo`) and launches it.
Importing it loads no model and starts no server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description="ISNet Explorer: compare the heatmaps of an "
                                                 "ISNet and a standard model, inject bias, "
                                                 "fine-tune.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT",
                                                                       7860)))
    parser.add_argument("--share", action="store_true",
                        help="also make a public gradio.live link (needs internet)")
    parser.add_argument("--checkpoint", nargs=2, metavar=("STANDARD", "ISNET"),
                        help="the two checkpoints to compare (default: assets/checkpoints)")
    parser.add_argument("--inbrowser", action="store_true", help="open a browser tab")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="require this login (repeat for several users); use it with "
                             "--share or --host 0.0.0.0. Fine-tuned models and downloads stay "
                             "per session either way")
    parser.add_argument("--auth-file", metavar="FILE",
                        help="require a login from FILE: one USER:PASSWORD per line (blank lines "
                             "and lines starting with # are skipped); keeps passwords out of the "
                             "shell history")
    parser.add_argument("--arena-dir", default=None, metavar="FOLDER",
                        help="the results folder the Arena tab shows first (default "
                             "results/arena-h200-full); every folder under results/ with an "
                             "arena.json is in the tab's list")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per computation (default 1: each request already "
                             "runs in its own thread, and more threads per small image only "
                             "spin-wait for each other on a busy machine)")
    parser.add_argument("--explain-batch", type=int, default=8, metavar="N",
                        help="most Explain requests that arrive together run as one LRP call "
                             "per model (default 8; 1: one call per request, no batching)")
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        metavar="MODE", help="compile every model's LRP walk with torch.compile "
                        "(MODE: default, reduce-overhead, …); the first heatmap of each image "
                        "size then waits for the compile (docs/performance.md)")
    from isnet.devices import DEVICE_CHOICES  # here: importing app.py loads no torch

    parser.add_argument("--device", default="auto",
                        metavar="{" + ",".join((*DEVICE_CHOICES, "cuda:N")) + "}",
                        help="where Explain, Audit and Fine-tune run (default auto: the first "
                             "CUDA GPU when torch sees one, else the CPU)")
    return parser.parse_args(argv)


def read_logins(pairs: list[str] | None, auth_file: str | None) -> list[tuple[str, str]]:
    """(user, password) pairs from ``--auth`` values and the lines of ``--auth-file``.

    Raises:
        ValueError: an entry without ``:``, an empty user or password, or an unreadable file
            (the message names the line, never a password).
    """
    entries = [("--auth", value) for value in pairs or []]
    if auth_file:
        try:
            lines = open(auth_file, encoding="utf-8").read().splitlines()  # noqa: SIM115
        except OSError as error:
            raise ValueError(f"--auth-file {os.path.basename(auth_file)}: cannot be read "
                             f"({type(error).__name__})") from None
        entries += [(f"--auth-file line {number}", line.strip())
                    for number, line in enumerate(lines, 1)
                    if line.strip() and not line.strip().startswith("#")]
    logins = []
    for where, value in entries:
        user, colon, password = value.partition(":")
        if not colon or not user.strip() or not password:
            raise ValueError(f"{where}: expected USER:PASSWORD")
        logins.append((user.strip(), password))
    if auth_file and not logins:
        raise ValueError(f"--auth-file {os.path.basename(auth_file)}: no USER:PASSWORD line")
    return logins


def main(argv: list[str] | None = None) -> int:
    """Build and serve the explorer until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from explorer.app import build_demo, warm_up
    from explorer.serving import launch_options
    from isnet.devices import choose_device, device_label

    torch.set_num_threads(max(1, args.threads))
    from explorer.limits import Limits
    from explorer.theme import CSS, THEME

    local = not args.share and args.host in ("127.0.0.1", "localhost", "::1")
    try:
        logins = read_logins(args.auth, args.auth_file)
        device = choose_device(args.device)  # before any model loads: a missing GPU fails fast
        demo = build_demo(checkpoints=args.checkpoint, limits=Limits(local_paths=local),
                          arena_dir=args.arena_dir, device=device)
        if args.compile:  # the models loaded so far, and (store.compile) every later one
            store = demo.explorer_context.store
            store.compile = args.compile
            for entry in store.visible(None):
                store.add(entry)
    except (ValueError, OSError, KeyError, RecursionError) as error:  # CheckpointError: ValueError
        print(f"Cannot start the explorer: {error}", file=sys.stderr)
        return 2
    limits = demo.explorer_context.limits
    demo.explorer_context.batcher.max_batch = max(1, args.explain_batch)
    print(f"Models run on {device_label(device)}.", flush=True)
    print("Preparing both default models' heatmaps of the bundled samples (a few seconds)…",
          flush=True)
    warm_up(demo.explorer_context)  # before serving: the first visitors' clicks are answered
    demo.queue(default_concurrency_limit=2, max_size=64)
    options = dict(server_name=args.host, server_port=args.port, inbrowser=args.inbrowser,
                   max_file_size=limits.upload_limit, theme=THEME, css=CSS, show_error=True,
                   auth=logins or None, **launch_options(demo))
    try:
        demo.launch(share=args.share, prevent_thread_lock=True, **options)
    except Exception as error:  # noqa: BLE001 — share server unreachable in a way Gradio raises
        if not args.share:
            raise
        print(f"Could not create a public share link ({type(error).__name__}: {error}).",
              file=sys.stderr)
        demo.launch(share=False, prevent_thread_lock=True, **options)
    if args.share and not getattr(demo, "share_url", None):
        print(f"No public share link could be made (no internet?). The explorer keeps serving "
              f"locally at {demo.local_url}", file=sys.stderr)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
