"""Issue 34, items 1 and 2: a session keeps its work across a heartbeat blip, and what a session
makes belongs to it (and, under ``--auth``, to its login).

Launched apps on a free loopback port; the blip is a raw heartbeat stream for the client's
session hash, opened and closed, and the test waits for Gradio's unload handler to have run
(an event set by a wrapper), never for a fixed time.
"""

from __future__ import annotations

import functools
import threading

import httpx
import pytest
import torch
from ui_fixtures import launch_tiny_app, named

from explorer.components import LOAD_CHECKPOINT_OUTPUTS, MODEL_CARDS_OUTPUTS
from isnet.io.checkpoints import save_checkpoint
from isnet.models.densenet import tiny_densenet

LOGINS = [("ada", "pw-ada"), ("bob", "pw-bob")]


def unload_signal(demo) -> threading.Event:
    """An event set each time Gradio's unload handler (``demo.unload``) has run."""
    done = threading.Event()
    for block_fn in demo.fns.values():
        if any(target[1] == "unload" for target in block_fn.targets):
            original = block_fn.fn

            @functools.wraps(original)
            def signalled(*args, _original=original, **kwargs):
                try:
                    return _original(*args, **kwargs)
                finally:
                    done.set()

            block_fn.fn = signalled
    return done


def blip(url: str, session_hash: str, cookies: dict | None = None) -> int:
    """Open the heartbeat stream of ``session_hash``, read its first message, close it: what a
    two-second network blip does. Returns the HTTP status."""
    target = f"{url.rstrip('/')}/gradio_api/heartbeat/{session_hash}"
    with httpx.stream("GET", target, cookies=cookies, timeout=30) as response:
        if response.status_code == 200:
            next(response.iter_lines())
        return response.status_code


def tiny_checkpoint(folder) -> str:
    torch.manual_seed(3)
    return str(save_checkpoint(folder / "mine.safetensors", tiny_densenet(num_classes=3),
                               model_name="tiny_densenet", class_names=["a", "b", "c"],
                               input_size=32, overwrite=True))


def load(client, path: str, name: str) -> str:
    """Load a checkpoint into the client's session; returns the new model's id."""
    from gradio_client import handle_file

    loaded = named(LOAD_CHECKPOINT_OUTPUTS, client.predict(
        checkpoint_file=handle_file(path), display_name=name, api_name="/load_checkpoint"))
    return [i for label, i in loaded["left_model"]["choices"] if label == name][0]


def exported_urls(client, folder) -> list[str]:
    """Explain an image in the client's session, export the view; the exported files' URLs."""
    from gradio_client import handle_file
    from PIL import Image
    from ui_fixtures import object_image

    Image.fromarray(object_image(1)[0]).save(folder / "picture.png")
    editor = {"background": handle_file(str(folder / "picture.png")), "layers": [],
              "composite": None}
    client.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                   api_name="/explain")
    return file_urls(client.predict(view_name="explain", api_name="/export"))


def file_urls(value) -> list[str]:
    """Every ``url`` inside an answer (nested dicts and lists)."""
    if isinstance(value, dict):
        found = [value["url"]] if isinstance(value.get("url"), str) else []
        return found + [u for item in value.values() for u in file_urls(item)]
    if isinstance(value, list | tuple):
        return [u for item in value for u in file_urls(item)]
    return []


@pytest.fixture(scope="module")
def open_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("open")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))  # as app.py: work inside Gradio's temp
    demo, url = launch_tiny_app(tmp, work_dir=tmp / "gradio" / "work")
    yield demo, url, tmp
    demo.close()
    patch.undo()


@pytest.fixture(scope="module")
def login_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("login")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp, auth=LOGINS, work_dir=tmp / "gradio" / "work")
    yield demo, url, tmp
    demo.close()
    patch.undo()


def test_a_heartbeat_blip_keeps_the_sessions_models_and_files(open_app):
    from gradio_client import Client

    demo, url, tmp = open_app
    unloaded = unload_signal(demo)
    client = Client(url, verbose=False)
    model_id = load(client, tiny_checkpoint(tmp), "kept across a blip")
    folder = demo.explorer_context.session_dir(client.session_hash)
    assert blip(url, client.session_hash) == 200
    assert unloaded.wait(60), "Gradio never ran the unload handler"
    cards = named(MODEL_CARDS_OUTPUTS, client.predict(api_name="/model_cards"))
    assert "kept across a blip" in cards["cards"]
    assert client.predict(model=model_id, api_name="/download_model")[0]  # its file is there
    assert folder.is_dir()
    client.close()


def test_a_sessions_urls_never_reveal_its_session_hash(open_app):
    from gradio_client import Client

    demo, url, tmp = open_app
    client = Client(url, verbose=False, download_files=False)
    urls = exported_urls(client, tmp)
    assert urls and all(client.session_hash not in u for u in urls)
    model_id = load(client, tiny_checkpoint(tmp), "mine")
    assert client.session_hash not in str(client.predict(model=model_id,
                                                         api_name="/download_model"))
    client.close()


def test_under_auth_the_heartbeat_needs_the_login(login_app):
    from gradio_client import Client

    demo, url, _ = login_app
    client = Client(url, verbose=False, auth=LOGINS[0])
    assert blip(url, client.session_hash) == 401  # no cookie: no unload, no cancelled events
    assert blip(url, client.session_hash, cookies=client.cookies) == 200
    client.close()


def test_under_auth_models_and_files_belong_to_the_login(login_app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    demo, url, tmp = login_app
    ada = Client(url, verbose=False, auth=LOGINS[0], download_files=False)
    bob = Client(url, verbose=False, auth=LOGINS[1], download_files=False)
    model_id = load(ada, tiny_checkpoint(tmp), "ada's model")
    bob.session_hash = ada.session_hash  # bob learnt ada's session hash
    with pytest.raises(AppError, match="No model called"):
        bob.predict(model=model_id, api_name="/download_model")
    assert "ada's model" not in named(MODEL_CARDS_OUTPUTS, bob.predict(
        api_name="/model_cards"))["cards"]
    address = exported_urls(ada, tmp)[0]
    assert httpx.get(address, cookies=ada.cookies).status_code == 200
    assert httpx.get(address, cookies=bob.cookies).status_code == 404
    ada.close()
    bob.close()
