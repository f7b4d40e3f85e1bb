"""Issue 34, item 4: fair queues. One queued or running fine-tune and one audit per session
(a clear message for the second), a bound on all of them together, and Explain answering while a
fine-tune runs."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, named, object_image

from explorer.components import FINE_TUNE_OUTPUTS
from explorer.queues import OnePerSession

LONG_RUN_EPOCHS = 200


def fake_demo(*jobs: tuple[str, str, str | None]) -> SimpleNamespace:
    """A stand-in for the app with these (endpoint, session hash, login) jobs in its queue."""
    events = {f"e{i}": SimpleNamespace(fn=SimpleNamespace(api_name=api), session_hash=session,
                                       username=login)
              for i, (api, session, login) in enumerate(jobs)}
    return SimpleNamespace(_queue=SimpleNamespace(event_ids_to_events=events))


def test_one_audit_per_session_and_login_and_a_bound_on_all():
    demo = fake_demo(("audit", "s1", None), ("fine_tune", "s2", None))
    audits = OnePerSession(demo, "audit", "audit", max_waiting=3)
    assert "already has an audit queued or running" in audits.admit("s1", None)
    assert audits.admit("s2", None) is None  # its fine-tune does not count against audits
    assert "already has" in audits.admit("s2", None)  # accepted, not yet listed by Gradio
    assert audits.admit("s1", "ada") is None  # same hash, another login: another session
    assert "3 audits are queued or running" in audits.admit("s9", None)
    anonymous = OnePerSession(fake_demo(), "audit", "audit", max_waiting=3)
    assert [anonymous.admit(None, None) for _ in range(3)] == [None] * 3  # raw calls, no hash
    assert "3 audits are queued" in anonymous.admit(None, None)


def test_the_app_limits_its_fine_tunes_and_audits(tmp_path):
    from ui_fixtures import tiny_models, write_samples

    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    limited = {fn.api_name for fn in demo.fns.values()
               if getattr(fn.validator, "__self__", None).__class__.__name__ == "OnePerSession"}
    assert limited == {"fine_tune", "audit"}  # other validators (a field's check) may exist


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("queues")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))  # this app's files in its own folder
    demo, url = launch_tiny_app(tmp, max_epochs=LONG_RUN_EPOCHS)
    yield url, tmp
    demo.close()
    patch.undo()


def test_a_fine_tune_refused_at_once_does_not_block_the_next(app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _ = app
    client = Client(url, verbose=False)
    for _ in range(3):  # each ends at once; none leaves the session "already running"
        with pytest.raises(AppError, match="Learning rate must lie in"):
            client.predict(base_model="standard", training_data="samples", uploaded_files=[],
                           training_method="all", epochs_count=1, heatmap_loss_share=0.7,
                           gwrp_decay=0.9, learning_rate_value=1e30, api_name="/fine_tune")
    client.close()


def test_a_second_fine_tune_of_a_session_is_refused_and_explain_keeps_answering(app):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import ValidationError

    url, tmp = app
    trainer, viewer = Client(url, verbose=False), Client(url, verbose=False)
    inputs = dict(base_model="standard", training_data="samples", uploaded_files=[],
                  training_method="all", epochs_count=LONG_RUN_EPOCHS, heatmap_loss_share=0.7,
                  gwrp_decay=0.9, learning_rate_value=0.01, api_name="/fine_tune")
    job = trainer.submit(**inputs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
            "Step" in named(FINE_TUNE_OUTPUTS, o)["status"] for o in job.outputs()):
        time.sleep(0.1)
    assert not job.done()
    with pytest.raises(ValidationError, match="already has a fine-tune queued or running"):
        trainer.predict(**inputs)
    Image.fromarray(object_image(1)[0]).save(tmp / "picture.png")
    editor = {"background": handle_file(str(tmp / "picture.png")), "layers": [],
              "composite": None}
    answer = viewer.predict(image_and_mask=editor, left_model="standard", right_model="isnet",
                            api_name="/explain")
    assert answer and not job.done()  # answered while the fine-tune still runs
    trainer.predict(api_name="/stop_fine_tune")
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    trainer.close()
    viewer.close()
