"""The launched explorer driven through gradio_client, with tiny models injected.

Covers: explain, inject bias, a tiny fine-tune (then explaining with its result), a list of bad
inputs after which the app still answers, and two concurrent sessions that do not see each
other's models.
"""

import pickle
import threading

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, object_image

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp, max_file_size="300kb")
    yield url, tmp
    demo.close()
    mp.undo()


@pytest.fixture
def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


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


def _explain(client, editor, left="standard", right="isnet", target="predicted class"):
    return client.predict(editor, left, right, target, 0.6, 3, api_name="/explain")


def test_explain_gives_two_heatmaps_and_float_shares(client, app):
    image, layer = _files(app[1])
    out = _explain(client, _editor(image, layer))
    left_top, left_overlay, left_heat, left_share = out[:4]
    right_top, right_overlay, right_heat, right_share = out[4:8]
    assert {c["label"] for c in left_top["confidences"]} <= {"circle", "square", "triangle"}
    for path in (left_overlay, left_heat, right_overlay, right_heat):
        assert np.asarray(Image.open(path)).shape[-1] == 3
    assert isinstance(left_share, float) and 0 <= left_share <= 1
    assert isinstance(right_share, float) and 0 <= right_share <= 1
    assert "background share" in out[9]


def test_sample_and_inject_bias(client):
    editor, true_class = client.predict("square_0", api_name="/load_sample")
    assert true_class == "square" and editor["layers"]
    out = client.predict(_resend(editor), "standard", "isnet", "square", "decoy", "circle",
                         "top_left",
                         0.2, True, "#ff0000", 1.0, 0, 0.6, 3, api_name="/inject_bias")
    biased, comparison = out[0], out[1]
    assert np.asarray(Image.open(biased)).shape == (256, 256, 3)
    assert "P(square)" in comparison and "P(circle)" in comparison
    assert isinstance(out[5], float)


def test_tiny_fine_tune_joins_the_models_of_its_session(client, app):
    from gradio_client import Client

    result = client.predict("standard", "samples", [], "selective", 1, 0.7, 0.9, 0.01,
                            api_name="/fine_tune")
    runs, status, checkpoint, new_id = result[0], result[1], result[3], result[8]["value"]
    assert [row[1:3] for row in runs["data"]] == [["selective", 1]]
    assert "Done" in status and str(checkpoint).endswith(".safetensors")
    assert new_id.startswith("tuned-")
    image, layer = _files(app[1])
    out = _explain(client, _editor(image, layer), right=new_id)
    assert isinstance(out[7], float)
    stranger = Client(app[0], verbose=False)  # another session must not see it
    with pytest.raises(Exception, match="No model"):
        _explain(stranger, _editor(image, layer), right=new_id)


def test_bad_inputs_get_messages_and_the_app_keeps_serving(client, app):
    from gradio_client import handle_file

    tmp = app[1]
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
        ("not an image", lambda: client.predict(handle_file(str(tmp / "notes.png")),
                                                api_name="/load_image")),
        ("damaged", lambda: client.predict(handle_file(str(tmp / "truncated.png")),
                                           api_name="/load_image")),
        ("size", lambda: client.predict(_editor(image), handle_file(str(tmp / "wide_mask.png")),
                                        api_name="/upload_mask")),
        ("No model", lambda: _explain(client, _editor(image, layer), right="missing")),
        ("not a checkpoint", lambda: client.predict(handle_file(str(tmp / "evil.pt")), "",
                                                    api_name="/load_checkpoint")),
        ("not a checkpoint", lambda: client.predict(handle_file(str(tmp / "notes.pt")), "",
                                                    api_name="/load_checkpoint")),
        ("Invalid file type", lambda: client.predict(handle_file(str(tmp / "notes.png")), "",
                                                     api_name="/load_checkpoint")),
        ("Cannot place", lambda: client.predict(
            _editor(image, tmp / "full_layer.png"), "standard", "isnet", "square", "shape",
            "circle", "top_left", 0.2, True, "#ff0000", 1.0, 0, 0.6, 3,
            api_name="/inject_bias")),
        ("Upload a zip", lambda: client.predict("standard", "upload", [], "selective", 1, 0.7,
                                                0.9, 0.01, api_name="/fine_tune")),
    ]
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp / "big.png")  # ~480 kB, over the 300 kB upload limit
    bad_calls.append(("(?i)size|large|413", lambda: client.predict(
        handle_file(str(tmp / "big.png")), api_name="/load_image")))
    for expected, call in bad_calls:
        with pytest.raises(Exception, match=expected):
            call()
    assert isinstance(_explain(client, _editor(image, layer))[3], float)  # still serving


def test_two_concurrent_sessions_keep_their_own_state(app):
    from gradio_client import Client, handle_file

    from isnet.io.checkpoints import save_checkpoint
    from isnet.models.densenet import tiny_densenet

    tmp = app[1]
    alice, bob = Client(app[0], verbose=False), Client(app[0], verbose=False)
    path = save_checkpoint(tmp / "alice.safetensors", tiny_densenet(num_classes=3),
                           class_names=["circle", "square", "triangle"], input_size=32,
                           overwrite=True)
    alice.predict(handle_file(str(path)), "Alice's model", api_name="/load_checkpoint")
    cards_alice = alice.predict(api_name="/model_cards")[0]
    cards_bob = bob.predict(api_name="/model_cards")[0]
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
    alone = {name: _explain(Client(app[0], verbose=False), _editor(*inputs[name]))
             for name in inputs}
    for name in inputs:  # each session got the answer for its own image
        assert results[name][3] == alone[name][3] and results[name][7] == alone[name][7]
    assert results["a"][3] != results["b"][3]


def test_stop_ends_a_fine_tune_without_saving(app):
    import time

    from gradio_client import Client

    client = Client(app[0], verbose=False)
    before = set((app[1] / "work").rglob("*.safetensors"))
    job = client.submit("standard", "samples", [], "all", 20, 0.7, 0.9, 0.01,
                        api_name="/fine_tune")
    deadline = time.monotonic() + 60
    while not any("Step" in o[1] for o in job.outputs()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Stopping" in client.predict(api_name="/stop_fine_tune")
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    statuses = [o[1] for o in job.outputs()]
    assert not any(s.startswith("Done") for s in statuses), statuses
    assert set((app[1] / "work").rglob("*.safetensors")) == before
    assert client.predict(api_name="/model_cards")[0]  # still serving


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
