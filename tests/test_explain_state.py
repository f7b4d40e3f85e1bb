"""Issue 30, defect 3: one current image in Explain. A new image (upload, sample, Audit gallery
click) clears what named the image before: the true class, the other source field, the domain
notice."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import launch_tiny_app, named, object_image, tiny_models, write_samples

from explorer.components import LOAD_IMAGE_OUTPUTS, LOAD_SAMPLE_OUTPUTS

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    tmp = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    demo, url = launch_tiny_app(tmp)
    yield Client(url, verbose=False), tmp
    demo.close()
    mp.undo()


def test_an_upload_after_a_sample_clears_its_true_class_sample_and_notice(client):
    from gradio_client import handle_file

    client, tmp = client
    sample = named(LOAD_SAMPLE_OUTPUTS, client.predict(sample_name="square_0",
                                                       api_name="/load_sample"))
    assert sample["true_class"] == "square" and sample["upload"] is None
    Image.fromarray(object_image(0, seed=3)[0]).save(tmp / "photo.png")
    # before the fix /load_image answered with the editor alone: "square" stayed the true class
    # and the sample dropdown still named square_0
    loaded = named(LOAD_IMAGE_OUTPUTS, client.predict(image_file=handle_file(str(tmp /
                                                                               "photo.png")),
                                                      api_name="/load_image"))
    assert loaded["true_class"] is None and loaded["sample"] is None
    assert loaded["notices"] == ""
    assert np.asarray(Image.open(loaded["editor"]["background"])).shape[:2] == (64, 64)


def test_an_audit_gallery_click_clears_the_sample_and_upload_fields(tmp_path):
    from explorer.app import build_demo

    images, masks = write_samples(tmp_path / "assets")
    demo = build_demo(models=tiny_models(), samples_dir=images, masks_dir=masks,
                      work_dir=tmp_path / "work")
    pick = next(fn for fn in demo.fns.values() if fn.name == "on_pick")
    labels = {getattr(block, "label", None) for block in pick.outputs}
    elem_ids = {getattr(block, "elem_id", None) for block in pick.outputs}
    assert "Sample image" in labels and "image-upload" in elem_ids  # before: editor and class
    assert "domain-notice" in elem_ids
