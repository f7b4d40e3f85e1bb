"""Issue 34, item 6: 1 GB only for checkpoints; other uploads keep a small limit; big uploads that
no model uses are deleted within minutes.

Raw HTTP against a launched app whose Gradio limit is the checkpoint limit (as ``app.py``
launches it) and whose other uploads are limited to 1 MB.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from ui_fixtures import free_port, tiny_models, write_samples

from explorer.uploads import BigUploads


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from explorer.app import build_demo
    from explorer.limits import Limits
    from explorer.serving import launch_options

    tmp = tmp_path_factory.mktemp("uploads")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    images, masks = write_samples(tmp / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp / "work", limits=Limits(max_file_size="1mb"))
    demo.queue(default_concurrency_limit=2)
    limits = demo.explorer_context.limits
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True,
                            max_file_size=limits.upload_limit, **launch_options(demo))
    yield demo, url.rstrip("/"), tmp / "gradio"
    demo.close()
    patch.undo()


def upload(url: str, name: str, size: int) -> httpx.Response:
    return httpx.post(f"{url}/gradio_api/upload", files={"files": (name, b"\0" * size)},
                      timeout=60)


def stored(folder: Path, name: str) -> list[Path]:
    return [path for path in folder.rglob(name) if path.is_file()]


def test_a_file_over_the_small_limit_that_is_no_checkpoint_is_deleted_and_refused(app):
    _, url, folder = app
    answer = upload(url, "huge.png", 2 * 1024 * 1024)
    assert answer.status_code == 413
    assert "huge.png is 2 MB; files other than checkpoints" in answer.text
    assert "at most 1 MB" in answer.text and str(folder) not in answer.text
    assert stored(folder, "huge.png") == []
    assert upload(url, "small.png", 1000).status_code == 200


def test_a_big_checkpoint_upload_is_accepted_then_deleted_when_no_model_uses_it(app):
    demo, url, folder = app
    answer = upload(url, "model.safetensors", 2 * 1024 * 1024)
    assert answer.status_code == 200
    (path,) = answer.json()
    assert Path(path).is_file()
    janitor = demo.explorer_context.sessions
    janitor.uploads.max_age_s = 0.0
    janitor.sweep()
    assert not Path(path).exists()


def test_big_uploads_in_use_by_a_model_are_kept(tmp_path):
    used, unused = tmp_path / "used.pth", tmp_path / "unused.pth"
    used.write_bytes(b"x")
    unused.write_bytes(b"x")
    uploads = BigUploads(max_age_s=60.0)
    uploads.note(used)
    uploads.note(unused)
    assert uploads.sweep([]) == []  # too young
    uploads.max_age_s = 0.0
    time.sleep(0.01)
    assert uploads.sweep([str(used)]) == [str(unused)]
    assert used.exists() and not unused.exists()


def test_an_empty_upload_is_not_kept(app):
    _, url, folder = app
    answer = upload(url, "nothing.png", 0)
    assert answer.status_code == 400 and "nothing.png is empty (0 bytes)" in answer.text
    assert stored(folder, "nothing.png") == []
