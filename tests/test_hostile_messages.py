"""Issue 34, item 7: what a hostile client gets back names no server path, loose uploads stay in
their folder, and password guessing is rate limited.
"""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, make_context, object_image

from explorer.errors import InputError, guarded
from explorer.handlers.train_data import uploaded_set
from explorer.serving import LoginThrottle


def damaged_png(path: Path) -> Path:
    """A PNG whose header is sound and whose pixel data is not."""
    buffer = io.BytesIO()
    image, _ = object_image(0)
    Image.fromarray(image).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    start = raw.find(b"IDAT")
    raw[start + 30:start + 60] = b"\xff" * 30
    path.write_bytes(bytes(raw))
    return path


def test_a_damaged_image_sent_to_explain_gets_a_message_without_a_server_path(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    demo, url = launch_tiny_app(tmp_path)
    try:
        client = Client(url, verbose=False)
        editor = {"background": handle_file(str(damaged_png(tmp_path / "broken.png"))),
                  "layers": [], "composite": None}
        with pytest.raises(AppError) as refused:
            client.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                           api_name="/explain")
        client.close()
    finally:
        demo.close()
    message = str(refused.value)
    assert "broken.png looks like an image but is damaged or truncated" in message
    assert "/tmp" not in message and str(tmp_path) not in message


def test_a_loose_file_named_to_climb_out_is_refused_and_nothing_is_written_outside(tmp_path):
    ctx = make_context(tmp_path)
    image, mask = object_image(0)
    sources = tmp_path / "sources"
    sources.mkdir()
    Image.fromarray(image).save(sources / ".._a.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(sources / ".._a.mask.png")
    before = set(ctx.session_dir("s").parent.rglob("*"))
    with pytest.raises(InputError, match="not starting with a dot"):
        uploaded_set(ctx, "s", [str(sources / ".._a.png"), str(sources / ".._a.mask.png")], 32)
    after = set(ctx.session_dir("s").parent.rglob("*"))
    assert not [path for path in after - before if path.name.startswith(".._a")]


@pytest.mark.parametrize("path", ["/" + "a" * 5000, "/proc/self/mem"])
def test_a_special_or_long_path_gets_a_clear_message_that_does_not_echo_it(path):
    def read(name: str) -> bytes:
        with open(name, "rb") as stream:
            return stream.read(16)

    with pytest.raises(gr.Error) as refused:
        guarded(read)(path)
    message = str(refused.value.message)
    assert "cannot be read" in message
    assert path not in message and "aaaaaaaaaa" not in message


def test_password_guessing_from_one_address_is_answered_429(tmp_path):
    demo, url = launch_tiny_app(tmp_path, auth=[("ada", "right-password")])
    try:
        login = f"{url.rstrip('/')}/login"
        for _ in range(5):
            wrong = httpx.post(login, data={"username": "ada", "password": "guess"})
            assert wrong.status_code == 400
        throttled = httpx.post(login, data={"username": "ada", "password": "right-password"})
        assert throttled.status_code == 429
        assert "Too many failed logins" in throttled.text
    finally:
        demo.close()


def test_failed_logins_are_forgotten_after_the_window():
    now = [0.0]
    throttle = LoginThrottle(app=None, max_failures=2, window_s=60.0, clock=lambda: now[0])
    throttle._failures["1.2.3.4"] = [0.0, 1.0]
    assert throttle.failures("1.2.3.4") == 2
    now[0] = 60.5
    assert throttle.failures("1.2.3.4") == 1
    now[0] = 61.5
    assert throttle.failures("1.2.3.4") == 0


def test_a_shared_apps_audit_refuses_a_folder_path_even_from_a_loopback_peer(tmp_path):
    """As ``--share`` or ``--host 0.0.0.0`` runs it (``Limits.local_paths`` False), the Audit
    reads no folder path, whoever asks (here a client on 127.0.0.1), as the Models tab."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    folder = tmp_path / "secret"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for name in ("a", "b"):
        image, mask = object_image(0 if name == "a" else 1)
        Image.fromarray(image).save(folder / name / "1.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / name / "1.mask.png")
    demo, url = launch_tiny_app(tmp_path)
    try:
        assert demo.explorer_context.limits.local_paths is False
        client = Client(url, verbose=False)
        with pytest.raises((AppError, httpx.HTTPStatusError)) as refused:  # not even a choice
            client.predict(model="standard", second_model="isnet", image_source="folder",
                           bundled_images=10, uploaded_zip=None, folder_path=str(folder),
                           mask_source="set", api_name="/audit")
        client.close()
    finally:
        demo.close()
    assert "Done" not in str(refused.value) and str(folder) not in str(refused.value)
