"""The launched explorer driven through gradio_client, with tiny models injected.

Covers: explain, inject bias, a tiny fine-tune (then explaining with its result), a list of bad
inputs after which the app still answers, and two concurrent sessions that do not see each
other's models.
"""

import pickle
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, named, object_image

from explorer.components import (
    EXPLAIN_OUTPUTS,
    FINE_TUNE_OUTPUTS,
    INJECT_BIAS_OUTPUTS,
    LOAD_SAMPLE_OUTPUTS,
    MODEL_CARDS_OUTPUTS,
)
from explorer.handlers.explain_views import OWN_SCALES

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


# A run the Stop button must interrupt: unstopped, it would take ~100 × the time from its first
# step report to the stop request, so the stop always lands mid-run (no timing race).
LONG_RUN_EPOCHS = 200


class LaunchedApp(NamedTuple):
    """The app under test: its address and the folder its files live in."""

    url: str
    folder: Path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp, max_file_size="300kb", max_epochs=LONG_RUN_EPOCHS)
    yield LaunchedApp(url, tmp)
    demo.close()
    mp.undo()


@pytest.fixture
def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def _files(tmp, kind=1, name="img"):
    image, mask = object_image(kind, seed=kind)
    Image.fromarray(image).save(tmp / f"{name}.png")
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[mask] = (0, 255, 0, 120)
    Image.fromarray(layer).save(tmp / f"{name}_layer.png")
    return tmp / f"{name}.png", tmp / f"{name}_layer.png"


def _editor(image, layer=None):
    from gradio_client import handle_file

    return {"background": handle_file(str(image)),
            "layers": [handle_file(str(layer))] if layer else [], "composite": None}


def _resend(editor):
    """An editor value the server returned, made sendable again (paths → file handles)."""
    return _editor(editor["background"], None) | {
        "layers": [__import__("gradio_client").handle_file(p) for p in editor["layers"]]}


def _explain(client, editor, left="standard", right="isnet", target="predicted class",
             **settings):
    """The /explain endpoint, inputs and outputs by name."""
    return named(EXPLAIN_OUTPUTS, client.predict(
        image_and_mask=editor, left_model=left, right_model=right, explain_class=target,
        overlay_opacity=0.6, top_predictions=3, **settings, api_name="/explain"))


def _inject(client, editor, true_class="square", kind="shape", **mark):
    """The /inject_bias endpoint, inputs and outputs by name."""
    settings = dict(mark_kind=kind, mark_of_class="circle", mark_position="top_left",
                    mark_size=0.2, class_colour=True, mark_colour="#ff0000", mark_opacity=1.0,
                    mark_seed=0) | mark
    return named(INJECT_BIAS_OUTPUTS, client.predict(
        image_and_mask=editor, left_model="standard", right_model="isnet",
        true_class=true_class, **settings, overlay_opacity=0.6, top_predictions=3,
        api_name="/inject_bias"))


def _fine_tune_inputs(method="selective", epochs=1, source="samples"):
    return dict(base_model="standard", training_data=source, uploaded_files=[],
                training_method=method, epochs_count=epochs, heatmap_loss_share=0.7,
                gwrp_decay=0.9, learning_rate_value=0.01, api_name="/fine_tune")


def _load_checkpoint(client, path, name=""):
    from gradio_client import handle_file

    return client.predict(checkpoint_file=handle_file(str(path)), display_name=name,
                          api_name="/load_checkpoint")


def _cards(client):
    return named(MODEL_CARDS_OUTPUTS, client.predict(api_name="/model_cards"))["cards"]


def test_explain_gives_two_heatmaps_and_float_shares(client, app):
    image, layer = _files(app.folder)
    out = _explain(client, _editor(image, layer))
    labels = {c["label"] for c in out["left_top"]["confidences"]}
    assert labels <= {"circle", "square", "triangle"}
    for name in ("left_overlay", "left_heatmap", "right_overlay", "right_heatmap", "colorbar"):
        assert np.asarray(Image.open(out[name])).shape[-1] == 3
    for name in ("left_share", "right_share"):
        assert isinstance(out[name], float) and 0 <= out[name] <= 1
    assert "background share" in out["summary"]
    own = _explain(client, _editor(image, layer), colour_scale=OWN_SCALES)
    assert "own colour scale" in own["summary"] and own["left_share"] == out["left_share"]


def test_the_input_layer_rule_is_each_models_own_unless_one_is_chosen(client, app):
    from explorer.errors import InputError
    from explorer.tabs.explain import input_rule

    image, layer = _files(app.folder)
    editor = _editor(image, layer)

    def heatmaps(**rule):
        out = named(EXPLAIN_OUTPUTS, client.predict(
            image_and_mask=editor, left_model="standard", right_model="isnet",
            explain_class="predicted class", overlay_opacity=0.6, top_predictions=3, **rule,
            api_name="/explain"))
        return [np.asarray(Image.open(out[f"{side}_heatmap"])) for side in ("left", "right")]

    own, zb, epsilon = heatmaps(), heatmaps(input_zb_rule="zb"), heatmaps(
        input_zb_rule="epsilon")
    for default, chosen_zb, chosen_epsilon in zip(own, zb, epsilon, strict=True):
        assert np.array_equal(default, chosen_zb)  # the tiny models were trained with z^B
        assert not np.array_equal(default, chosen_epsilon)
    with pytest.raises(Exception, match="not in the list of choices"):
        heatmaps(input_zb_rule="both")
    assert [input_rule(v) for v in ("as trained", None, "zb", True, "epsilon", False)] == \
        [None, None, True, True, False, False]
    with pytest.raises(InputError, match="Input layer rule must be one of"):
        input_rule(1)


def test_sample_and_inject_bias(client):
    sample = named(LOAD_SAMPLE_OUTPUTS, client.predict(sample_name="square_0",
                                                       api_name="/load_sample"))
    # the sample's mask is shown tinted in (the composite); the editor gets no layers (a layer
    # sent by the server was drawn as a shifted "ghost mask", issue 30) and the session keeps it
    assert sample["true_class"] == "square" and sample["editor"]["composite"]
    out = _inject(client, _resend(sample["editor"]), kind="decoy")
    assert np.asarray(Image.open(out["biased"])).shape == (256, 256, 3)
    assert "P(square)" in out["comparison"] and "P(circle)" in out["comparison"]
    assert isinstance(out["left_share"], float)
    assert np.asarray(Image.open(out["colorbar"])).shape[2] == 3  # the scale with its ticks


def test_tiny_fine_tune_joins_the_models_of_its_session(client, app):
    from gradio_client import Client

    result = named(FINE_TUNE_OUTPUTS, client.predict(**_fine_tune_inputs()))
    new_id = result["right_model"]["value"]
    assert [row[1:3] for row in result["runs"]["data"]] == [["selective", 1]]
    assert "Done" in result["status"] and str(result["checkpoint"]).endswith(".safetensors")
    assert new_id.startswith("tuned-")
    image, layer = _files(app.folder)
    out = _explain(client, _editor(image, layer), right=new_id)
    assert isinstance(out["right_share"], float)
    stranger = Client(app.url, verbose=False)  # another session must not see it
    with pytest.raises(Exception, match="No model"):
        _explain(stranger, _editor(image, layer), right=new_id)


def test_bad_inputs_get_messages_and_the_app_keeps_serving(client, app):
    from gradio_client import handle_file

    tmp = app.folder
    image, layer = _files(tmp)
    (tmp / "notes.png").write_text("not an image")
    (tmp / "notes.pt").write_text("not a checkpoint")
    (tmp / "truncated.png").write_bytes(image.read_bytes()[:80])
    Image.fromarray(np.zeros((10, 40), np.uint8)).save(tmp / "wide_mask.png")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    full = np.zeros((64, 64, 4), np.uint8)
    full[..., 3] = 255
    Image.fromarray(full).save(tmp / "full_layer.png")
    bad_calls = [
        ("not an image", lambda: client.predict(image_file=handle_file(str(tmp / "notes.png")),
                                                api_name="/load_image")),
        ("damaged", lambda: client.predict(image_file=handle_file(str(tmp / "truncated.png")),
                                           api_name="/load_image")),
        ("size", lambda: client.predict(
            image_and_mask=_editor(image), mask_image_file=handle_file(str(tmp / "wide_mask.png")),
            api_name="/upload_mask")),
        ("No model", lambda: _explain(client, _editor(image, layer), right="missing")),
        ("not a checkpoint", lambda: _load_checkpoint(client, tmp / "evil.pt")),
        ("not a checkpoint", lambda: _load_checkpoint(client, tmp / "notes.pt")),
        ("Invalid file type", lambda: _load_checkpoint(client, tmp / "notes.png")),
        ("Cannot place", lambda: _inject(client, _editor(image, tmp / "full_layer.png"))),
        ("Upload a zip", lambda: client.predict(**_fine_tune_inputs(source="upload"))),
    ]
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp / "big.png")  # ~480 kB, over the 300 kB upload limit
    bad_calls.append(("(?i)size|large|413", lambda: client.predict(
        image_file=handle_file(str(tmp / "big.png")), api_name="/load_image")))
    for expected, call in bad_calls:
        with pytest.raises(Exception, match=expected):
            call()
    assert isinstance(_explain(client, _editor(image, layer))["left_share"], float)  # serving


def test_two_concurrent_sessions_keep_their_own_state(app):
    from gradio_client import Client

    from isnet.io.checkpoints import save_checkpoint
    from isnet.models.densenet import tiny_densenet

    tmp = app.folder
    alice, bob = Client(app.url, verbose=False), Client(app.url, verbose=False)
    path = save_checkpoint(tmp / "alice.safetensors", tiny_densenet(num_classes=3),
                           class_names=["circle", "square", "triangle"], input_size=32,
                           overwrite=True)
    _load_checkpoint(alice, path, "Alice's model")
    cards_alice, cards_bob = _cards(alice), _cards(bob)
    assert "Alice's model" in cards_alice and "Alice's model" not in cards_bob

    inputs = {name: _files(tmp, kind, name) for name, kind in (("a", 0), ("b", 2))}
    results, errors = {}, []

    def run(name, client):
        try:
            results[name] = _explain(client, _editor(*inputs[name]))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in (("a", alice), ("b", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    alone = {name: _explain(Client(app.url, verbose=False), _editor(*inputs[name]))
             for name in inputs}
    for name in inputs:  # each session got the answer for its own image
        for share in ("left_share", "right_share"):
            assert results[name][share] == alone[name][share]
    assert results["a"]["left_share"] != results["b"]["left_share"]


def test_stop_ends_a_fine_tune_without_saving(app):
    import time

    from gradio_client import Client

    client = Client(app.url, verbose=False)
    before = set((app.folder / "work").rglob("*.safetensors"))
    job = client.submit(**_fine_tune_inputs(method="all", epochs=LONG_RUN_EPOCHS))

    def statuses():
        return [named(FINE_TUNE_OUTPUTS, o)["status"] for o in job.outputs()]

    deadline = time.monotonic() + 60
    while not any("Step" in s for s in statuses()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Stopping" in client.predict(api_name="/stop_fine_tune")
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(s.startswith("Done") for s in statuses()), statuses()
    # the run itself reports the end (issue 30: the Stop click used to cancel it, so the status
    # stayed "Stopping…" and the last run's checkpoint stayed as if it were this run's)
    last = named(FINE_TUNE_OUTPUTS, job.outputs()[-1])
    assert last["status"].startswith("Stopped after"), statuses()
    checkpoints = [named(FINE_TUNE_OUTPUTS, o)["checkpoint"] for o in job.outputs()]
    assert checkpoints[0] is None  # cleared at the first update: no earlier run's file shows
    assert all(c is None or c == {"__type__": "update"} for c in checkpoints), checkpoints
    # nothing new (other sessions' files may vanish meanwhile: their cleanup is not this test's)
    assert not set((app.folder / "work").rglob("*.safetensors")) - before
    assert _cards(client)  # still serving


def test_importing_the_app_builds_no_model_and_starts_no_server():
    import subprocess
    import sys

    code = (
        "import threading, isnet.models.densenet as m\n"
        "def boom(*a, **k): raise SystemExit('a model was built at import time')\n"
        "m.DenseNet.__init__ = boom\n"
        "before = threading.active_count()\n"
        "import app, explorer.app, benchmarks.explorer_latency, scripts.screenshot\n"
        "assert threading.active_count() == before, 'a thread (server?) was started'\n"
        "args = app.parse_args(['--port', '9', '--host', '0.0.0.0', '--share', '--inbrowser',\n"
        "                       '--checkpoint', 'a.safetensors', 'b.safetensors'])\n"
        "assert (args.port, args.host, args.share, args.inbrowser) == (9, '0.0.0.0', True, True)\n"
        "assert args.checkpoint == ['a.safetensors', 'b.safetensors']\n"
        "print('ok')\n")
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          timeout=120, env={**__import__("os").environ,
                                            "GRADIO_ANALYTICS_ENABLED": "False"})
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]
