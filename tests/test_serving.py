"""Issue 12, serving side: each "Why" bullet as a test with a small generated input.

Bounded images on every decoding path (a PNG whose header claims 10000 × 10000 pixels), EXIF and
multi-frame notices, settings refused rather than replaced (learning rate 0, NaN, 1e30; epochs
NaN), fine-tuning in a worker process (a failed run is not listed; a killed worker loses nothing
and the app keeps answering), files with an owner and a lifetime (session end, TTL, leftovers at
start-up), output images written once and atomically under concurrency, ``--auth`` and
``app.py --checkpoint`` refusals. After each refusal the app still answers a normal Explain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from forged_inputs import deep_metadata, forged_png, no_architecture
from PIL import Image
from ui_fixtures import launch_tiny_app, make_context, named, object_image, tiny_models

from explorer.components import EXPLAIN_OUTPUTS, FINE_TUNE_OUTPUTS
from explorer.errors import InputError
from explorer.handlers import train as handlers_train
from explorer.handlers.explain import ExplainRequest, explain
from explorer.media.colour_scale import colour_scale_picture
from explorer.media.decode import decode_image, decode_mask
from explorer.media.editor import EditorInput, editor_value

ROOT = Path(__file__).resolve().parent.parent


def explain_pair(ctx, session=None):
    image, mask = object_image(1)
    return explain(ctx, session, ExplainRequest(EditorInput(editor_value(image, mask)),
                                                "standard", "isnet"))


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


# --- images: bounded before decoding, oriented, multi-frame noticed --------------------------

def test_a_forged_huge_png_is_refused_as_too_large_on_every_decoding_path(tmp_path):
    import gradio as gr
    from gradio.data_classes import FileData

    from explorer.media.widgets import checked_image_editor

    big = forged_png(tmp_path / "huge.png", 10_000, 10_000)
    for decode in (lambda: decode_image(str(big)), lambda: decode_mask(str(big), (64, 64)),
                   lambda: decode_image(big.read_bytes())):
        with pytest.raises(InputError, match="too large") as caught:
            decode()
        assert str(tmp_path) not in str(caught.value) and "megapixels" in str(caught.value)
    editor = checked_image_editor(type="numpy")
    with pytest.raises(gr.Error, match="too large"):
        editor.convert_and_format_image(FileData(path=str(big), orig_name="huge.png"))
    with pytest.raises(InputError, match="too large"):
        decode_image(np.zeros((7000, 7000), np.uint8))  # an array decoded elsewhere


def test_exif_orientation_is_applied_and_multi_frame_files_get_a_notice(tmp_path):
    from explorer.media.widgets import orient

    picture = np.zeros((20, 40, 3), np.uint8)
    picture[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: turn 90° clockwise to show
    Image.fromarray(picture).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    upright = decode_image(str(tmp_path / "photo.jpg")).image
    assert upright.shape[:2] == (40, 20)
    assert upright[:20].mean() > 200 and upright[20:].mean() < 50  # top half is the white half
    assert np.array_equal(orient(picture, 6), np.rot90(picture, -1))
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "animated.png", format="GIF", save_all=True,
                   append_images=frames[1:])  # a GIF renamed .png
    decoded = decode_image(str(tmp_path / "animated.png"))
    assert any("2 frames" in notice and "first" in notice for notice in decoded.notices)


def test_output_images_are_written_once_atomically_under_concurrent_answers(tmp_path):
    from explorer.media.stored import stored_png

    bar = np.tile(np.linspace(0, 255, 256).astype(np.uint8)[None, :, None], (16, 1, 3))
    paths, errors = [], []

    def answer():
        try:
            for _ in range(20):
                paths.append(stored_png(bar, tmp_path))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=answer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(paths)) == 1
    assert np.array_equal(np.asarray(Image.open(paths[0])), bar)
    assert [p.name for p in tmp_path.iterdir()] == [Path(paths[0]).name]  # no partial files


def test_stored_arrays_are_named_by_content_and_read_back_exactly(tmp_path):
    from explorer.media.stored import stored_npy, stored_png

    heatmaps = np.random.default_rng(0).normal(size=(2, 8, 8)).astype(np.float32)
    path = stored_npy(heatmaps, tmp_path)
    assert stored_npy(heatmaps.copy(), tmp_path) == path != stored_npy(heatmaps + 1, tmp_path)
    assert np.array_equal(np.load(path), heatmaps)
    picture = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(stored_png(picture, tmp_path))), picture)


def test_a_repeated_explain_is_answered_from_the_cache_and_a_changed_one_is_not(ctx,
                                                                              monkeypatch):
    from explorer.handlers import explain as explain_handlers

    image, mask = object_image(1)

    def ask(**options):
        return explain(ctx, None, ExplainRequest(EditorInput(editor_value(image, mask)),
                                                 "standard", "isnet", **options))

    first = ask()
    computed = []
    original = explain_handlers.explain_models
    monkeypatch.setattr(explain_handlers, "explain_models",
                        lambda *a, **k: computed.append(1) or original(*a, **k))
    again = ask()
    assert not computed  # the same view: nothing recomputed, the same pictures
    for before, after in zip(first.views, again.views, strict=True):
        assert np.array_equal(before.overlay, after.overlay) and before.share == after.share
    again.notices.append("only in this copy")
    assert "only in this copy" not in ask().notices
    faint = ask(opacity=0.2)  # another setting: drawn again
    assert computed == [1] and not np.array_equal(faint.left.overlay, first.left.overlay)
    ctx.store.get("standard", None).metadata["class_names"] = [f"c{i}" for i in range(3)]
    renamed = ask()  # a model overridden in place is not mistaken for what it was
    assert computed == [1, 1] and renamed.left.predicted.startswith("c")


def test_warm_up_computes_every_samples_maps_so_their_explains_only_draw(ctx, monkeypatch):
    from explorer.app import warm_up
    from explorer.handlers import explain as explain_handlers

    warm_up(ctx)
    computed = []
    original = explain_handlers.engine_explain
    monkeypatch.setattr(explain_handlers, "engine_explain",
                        lambda *a, **k: computed.append(1) or original(*a, **k))
    assert ctx.samples
    for sample in ctx.samples:  # as the editor's upload arrives: RGBA, with and without mask
        pixels = np.array(Image.open(sample.image_path).convert("RGBA"))
        mask = np.array(Image.open(sample.mask_path)) > 127
        for editor in ({"background": pixels, "layers": [], "composite": None},
                       editor_value(pixels[..., :3], mask)):
            pair = explain(ctx, None, ExplainRequest(EditorInput(editor), *ctx.default_pair))
            assert len(pair.views) == 2
    assert not computed  # no LRP ran: every map came from the warm-up
    explain(ctx, None, ExplainRequest(EditorInput(editor_value(*object_image(2, seed=99))),
                                      *ctx.default_pair))
    assert computed == [1, 1]  # a new image is computed, once per model


# --- settings: refused with the setting's name, never replaced -------------------------------

@pytest.mark.parametrize(("settings", "expected"), [
    ({"learning_rate": 0.0}, r"Learning rate must lie in \(0, 10\], got 0"),
    ({"learning_rate": float("nan")}, "Learning rate must be a finite number"),
    ({"learning_rate": 1e30}, "Learning rate must lie in"),
    ({"learning_rate": float("inf")}, "Learning rate must be a finite number"),
    ({"learning_rate": None}, "Learning rate must be a number"),
    ({"epochs": float("nan")}, "Epochs must be a finite number"),
    ({"epochs": 2.5}, "Epochs must be a whole number"),
    ({"epochs": 999}, "Epochs must lie between 1 and 20"),
    ({"decay": 1.0}, "GWRP decay"),
    ({"background_tint": 1.5}, "Random background colours must lie in"),
    ({"mask_margin": 1.5}, "Mask margin must be a whole number"),
    ({"mask_margin": -2}, "Mask margin must lie in"),
])
def test_bad_settings_are_refused_and_never_replaced(ctx, settings, expected):
    request = handlers_train.FineTuneRequest(**{"base_id": "standard", **settings})
    with pytest.raises(InputError, match=expected):
        list(handlers_train.fine_tune(ctx, "erin", request))
    assert not list(ctx.work_dir.rglob("*.safetensors"))


# --- files: an owner and a lifetime -----------------------------------------------------------

def test_session_work_is_removed_when_the_session_ends_or_idles(ctx):
    from explorer.entries import ModelEntry
    from explorer.sessions import SessionJanitor

    for session in ("ended", "idle", "raw-api-call"):
        (ctx.session_dir(session) / "tuned-1.safetensors").write_bytes(b"x")
        ctx.store.add(ModelEntry(f"m-{session}", session, ctx.store.get("standard", None).model,
                                 {}, owner=session))
    folders = {session: ctx.session_dir(session) for session in ("ended", "idle", "raw-api-call")}
    assert all(session not in folder.name for session, folder in folders.items())  # keyed names
    ctx.sessions.forget("ended")  # its time to live is over
    assert not folders["ended"].exists() and not ctx.store.choices("ended")[2:]
    assert folders["idle"].exists()
    ctx.sessions.ttl_s = 0.0  # every session is idle now
    assert ctx.sessions.sweep() == sorted([folders["idle"].name, folders["raw-api-call"].name])
    assert not list(ctx.work_dir.iterdir()) and len(ctx.store.visible("idle")) == 2
    (ctx.work_dir / "from-before-a-restart").mkdir()  # no known session: aged by its time
    assert SessionJanitor(ctx.store, ctx.work_dir, ttl_s=0.0).sweep() == ["from-before-a-restart"]
    assert isinstance(explain_pair(ctx).left.share, float)  # shared models untouched


def test_leftover_work_folders_and_partial_files_are_swept_at_start_up(tmp_path, monkeypatch):
    from explorer.app import make_context as build

    root = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(root))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    old = time.time() - 7200
    stale, alive, fresh = (root / f"isnet-explorer-{dead}-ab12",
                           root / f"isnet-explorer-{os.getppid()}-cd34",
                           root / "isnet-explorer-999999-new")
    partial = root / "elsewhere" / ".tuned-1.safetensors.x1y2.tmp"
    for folder in (stale, alive, fresh, partial.parent):
        folder.mkdir(parents=True)
        (folder / "tuned-1.safetensors").write_bytes(b"x" * 10)
    partial.write_bytes(b"half")
    for path in (stale, alive, partial):
        os.utime(path, (old, old))
    context = build(models=tiny_models(), samples_dir=tmp_path / "none")
    assert not stale.exists() and not partial.exists()
    assert alive.exists() and fresh.exists()  # a live process's, and a young one
    assert context.work_dir.name.startswith(f"isnet-explorer-{os.getpid()}-")


def test_auth_flags_are_parsed_documented_and_refused_cleanly(tmp_path):
    import app

    logins = tmp_path / "logins.txt"
    logins.write_text("# team\nada:s3cret:with:colons\n\nbob:pw\n")
    assert app.read_logins(["eve:pw"], str(logins)) == [
        ("eve", "pw"), ("ada", "s3cret:with:colons"), ("bob", "pw")]
    with pytest.raises(ValueError, match="--auth: expected USER:PASSWORD"):
        app.read_logins(["nopassword"], None)
    help_text = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    assert "--auth USER:PASSWORD" in help_text and "--auth-file FILE" in help_text


# --- fine-tuning in a worker process ----------------------------------------------------------

@pytest.mark.slow
def test_a_run_ending_non_finite_is_reported_failed_and_never_listed(ctx):
    from explorer.entries import ModelEntry

    broken = tiny_models()["Tiny standard"][0]
    with torch.no_grad():
        broken.classifier_layer.weight[0, 0] = float("nan")
    ctx.store.add(ModelEntry("broken", "Broken", broken, {"class_names": ["circle", "square",
                             "triangle"], "input_size": 32, "model_name": "tiny_densenet"}))
    before = ctx.store.choices("fay")
    updates = list(handlers_train.fine_tune(ctx, "fay", handlers_train.FineTuneRequest(
        base_id="broken", epochs=1)))
    assert "Failed" in updates[-1].status and "nothing was saved" in updates[-1].status
    assert updates[-1].entry is None and ctx.store.choices("fay") == before
    assert not list(ctx.work_dir.rglob("*.safetensors"))
    assert isinstance(explain_pair(ctx, "fay").left.share, float)


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_the_app_keeps_answering(ctx):
    saved = ctx.session_dir("gus") / "earlier.safetensors"
    saved.write_bytes(b"an earlier checkpoint")
    before = ctx.store.choices("gus")
    request = handlers_train.FineTuneRequest(base_id="standard", method="all", epochs=20)
    run = handlers_train.fine_tune(ctx, "gus", request)
    with pytest.raises(InputError, match="worker process ended before finishing"):
        for update in run:
            if update.worker_pid:
                os.kill(update.worker_pid, signal.SIGKILL)
    assert saved.read_bytes() == b"an earlier checkpoint"
    assert [p.name for p in ctx.session_dir("gus").iterdir()] == ["earlier.safetensors"]
    assert ctx.store.choices("gus") == before
    assert isinstance(explain_pair(ctx, "gus").left.share, float)


@pytest.mark.slow
def test_the_server_memory_stays_near_idle_across_fine_tunes(ctx):
    def rss_mb() -> float:
        status = Path("/proc/self/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmRSS"))
        return int(line.split()[1]) / 1024

    explain_pair(ctx)
    idle = rss_mb()
    for _ in range(2):
        updates = list(handlers_train.fine_tune(ctx, "hal", handlers_train.FineTuneRequest(
            base_id="standard", epochs=2)))
        assert updates[-1].entry is not None
    assert rss_mb() - idle < 300


# --- the launched app -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp)
    image, _ = object_image(1)
    Image.fromarray(image).save(tmp / "ok.png")
    yield url, tmp
    demo.close()
    patch.undo()


def _editor(path):
    from gradio_client import handle_file

    return {"background": handle_file(str(path)), "layers": [], "composite": None}


def _explain(client, path):
    return named(EXPLAIN_OUTPUTS, client.predict(
        image_and_mask=_editor(path), left_model="standard", right_model="isnet",
        explain_class="predicted class", overlay_opacity=0.6, top_predictions=3,
        api_name="/explain"))


def _fine_tune(client, **settings):
    values = dict(base_model="standard", training_data="samples", uploaded_files=[],
                  training_method="selective", epochs_count=1, heatmap_loss_share=0.7,
                  gwrp_decay=0.9, learning_rate_value=0.01) | settings
    return named(FINE_TUNE_OUTPUTS, client.predict(**values, api_name="/fine_tune"))


def _raw_call(url, api_name, data):
    """Call an endpoint through the raw HTTP API (JSON may carry NaN); the event stream text."""
    import httpx

    posted = httpx.post(f"{url}gradio_api/call/{api_name}", timeout=60,
                        content=json.dumps({"data": data}),
                        headers={"Content-Type": "application/json"})
    posted.raise_for_status()
    event = posted.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{api_name}/{event}", timeout=120).text


@pytest.mark.slow
def test_served_refusals_name_the_problem_and_the_app_keeps_answering(served, tmp_path):
    from gradio_client import Client, handle_file

    url, folder = served
    client = Client(url, verbose=False)
    big = forged_png(tmp_path / "huge.png", 10_000, 10_000)
    refusals = [
        (r"huge\.png is too large: 10000×10000", lambda: _explain(client, big)),
        (r"huge\.png is too large", lambda: client.predict(image_file=handle_file(str(big)),
                                                           api_name="/load_image")),
        (r"Learning rate must lie in \(0, 10\], got 0",
         lambda: _fine_tune(client, learning_rate_value=0.0)),
        ("Learning rate must lie in", lambda: _fine_tune(client, learning_rate_value=1e30)),
    ]
    for expected, call in refusals:
        with pytest.raises(Exception, match=expected) as caught:
            call()
        assert str(folder) not in str(caught.value)
        assert "predicts" in _explain(client, folder / "ok.png")["summary"]
    for data, expected in (([float("nan"), 1], "Learning rate must be a finite number"),
                           ([0.01, float("nan")], "Epochs must be a finite number")):
        learning_rate, epochs = data
        stream = _raw_call(url, "fine_tune", ["standard", "samples", [], "selective", epochs,
                                              0.7, 0.9, learning_rate, 0.0, 0])
        assert "event: error" in stream and expected in stream, stream
        assert "predicts" in _explain(client, folder / "ok.png")["summary"]
    assert not list((folder / "work").rglob("*.safetensors"))


@pytest.mark.slow
def test_a_checkpoint_without_architecture_or_with_deep_json_is_refused(served, tmp_path):
    from gradio_client import Client, handle_file

    url, folder = served
    client = Client(url, verbose=False)
    for name, expected in ((no_architecture(tmp_path), "architecture"),
                           (deep_metadata(tmp_path), "nested|deep")):
        with pytest.raises(Exception, match=expected) as caught:
            client.predict(checkpoint_file=handle_file(str(name)), display_name="",
                           api_name="/load_checkpoint")
        message = str(caught.value)
        assert "KeyError" not in message and "RecursionError" not in message
        assert str(tmp_path) not in message
        assert "predicts" in _explain(client, folder / "ok.png")["summary"]


@pytest.mark.slow
def test_concurrent_clients_get_answers_without_errors(served):
    from gradio_client import Client

    url, folder = served
    errors, answers = [], []

    def client_loop():
        client = Client(url, verbose=False)
        for _ in range(5):
            try:
                answers.append(_explain(client, folder / "ok.png"))
            except Exception as error:  # noqa: BLE001
                errors.append(error)

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(answers) == 20
    bars = {Path(answer["colorbar"]).read_bytes() for answer in answers}
    width = colour_scale_picture(1.0).shape[1]
    assert len(bars) == 1 and np.asarray(Image.open(answers[0]["colorbar"])).shape[1] == width


@pytest.mark.slow
def test_app_py_refuses_unusable_checkpoints_with_exit_code_2(tmp_path):
    for bad in (no_architecture(tmp_path), deep_metadata(tmp_path)):
        done = subprocess.run([sys.executable, "app.py", "--checkpoint", str(bad), str(bad),
                               "--port", "1"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "GRADIO_TEMP_DIR":
                                                str(tmp_path / "gradio")})
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Cannot start the explorer" in done.stderr and "Traceback" not in done.stderr
        assert bad.name in done.stderr and str(tmp_path) not in done.stderr
