"""Issue 30, "a real Python API": /api/explain, /api/models and /api/audit through gradio_client
on a launched app (a free port of 127.0.0.1), and the same functions imported from explorer.api.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_fixtures import CLASSES, SIZE, launch_tiny_app, make_context, object_image

from explorer import api, api_audit

pytestmark = pytest.mark.timeout(240)


def _picture(folder: Path, kind: int = 1) -> tuple[Path, Path]:
    image, mask = object_image(kind, seed=kind)
    Image.fromarray(image).save(folder / "photo.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "photo-mask.png")
    return folder / "photo.png", folder / "photo-mask.png"


def _zip(folder: Path) -> Path:
    path = folder / "set.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for kind, name in enumerate(CLASSES):
            for i in range(2):
                image, mask = object_image(kind, seed=20 + 10 * kind + i)
                for suffix, array in ((".png", image), (".mask.png", mask * 255)):
                    target = folder / f"{name}-{i}{suffix}"
                    Image.fromarray(array.astype(np.uint8)).save(target)
                    archive.write(target, f"{name}/{name}_{i}{suffix}")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    # as app.py runs it: the work folder inside Gradio's temp folder, so its files are served
    demo, url = launch_tiny_app(tmp, work_dir=tmp / "gradio" / "work")
    yield url, tmp
    demo.close()
    mp.undo()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


def test_models_lists_short_ids_and_cards(client):
    listed = client.predict(api_name="/api/models")
    assert [m["id"] for m in listed] == ["standard", "isnet"]
    assert all(m["classes"] == CLASSES and m["input_size"] == SIZE and m["card"]
               for m in listed)


def test_explain_gives_json_numbers_hashes_and_named_heatmap_files(client, app):
    from gradio_client import handle_file

    image, mask = _picture(app[1])
    result, files = client.predict(handle_file(str(image)), mask=handle_file(str(mask)),
                                   left="isnet", right="standard", api_name="/api/explain")
    left, right = result["models"]["left"], result["models"]["right"]
    assert (left["id"], right["id"]) == ("isnet", "standard")
    for side in (left, right):
        assert set(side["probabilities"]) == set(CLASSES)
        assert abs(sum(side["probabilities"].values()) - 1) < 1e-6
        assert isinstance(side["background_share"], float) and 0 <= side["background_share"] <= 1
        assert {"relevance_sum", "score", "conserved"} <= set(side["conservation"])
        assert side["settings"]["input_rule"] in ("z^B", "ε")
    assert result["image"] == {"file": "photo.png", "sha256": _sha256(image)}
    assert result["mask"]["sha256"] == _sha256(mask) and result["mask_used"]
    assert result["heatmap_axes"][1:] == ["y", "x"]
    assert [Path(f).name for f in files] == ["left-isnet-heatmap.npy",
                                             "right-standard-heatmap.npy"]
    maps = [np.load(f) for f in files]
    assert all(m.shape == (3, SIZE, SIZE) for m in maps)
    # the same function in Python gives the same numbers
    ctx = make_context(app[1] / "direct")
    direct = api.explain(str(image), str(mask), ctx=ctx)
    assert direct["models"]["left"]["probabilities"] == pytest.approx(left["probabilities"])
    assert np.allclose(np.load(direct["models"]["left"]["heatmap"]), maps[0], atol=1e-6)


def test_explain_settings_and_refusals(client, app):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    image, _ = _picture(app[1], kind=2)
    result, _ = client.predict(handle_file(str(image)), target="selective", epsilon=0.5,
                               input_rule="epsilon", api_name="/api/explain")
    settings = result["models"]["left"]["settings"]
    assert settings["epsilon"] == 0.5 and settings["input_rule"] == "ε"
    assert result["models"]["left"]["background_share"] is None and result["mask"] is None
    with pytest.raises(AppError, match="input_rule"):
        client.predict(handle_file(str(image)), input_rule="zz", api_name="/api/explain")
    with pytest.raises(AppError, match="ε must lie"):
        client.predict(handle_file(str(image)), epsilon=-3, api_name="/api/explain")
    with pytest.raises(AppError, match="No model called"):
        client.predict(handle_file(str(image)), left="nope", api_name="/api/explain")


def test_audit_of_a_zip_gives_a_per_image_csv_and_a_summary(client, app):
    from gradio_client import handle_file

    summary, table = client.predict(handle_file(str(_zip(app[1]))), models=["standard", "isnet"],
                                    masks="set", api_name="/api/audit")
    assert summary["images"] == 6 and [m["id"] for m in summary["models"]] == ["standard",
                                                                               "isnet"]
    assert set(summary["models"][0]["per_class"]) == set(CLASSES)
    rows = list(csv.DictReader(Path(table).read_text().splitlines()))
    assert len(rows) == 12 and rows[0].keys() == set(api_audit.CSV_COLUMNS)
    assert all(r["background_share"] and r["correct"] in ("0", "1") for r in rows)
    accuracy = np.mean([int(r["correct"]) for r in rows if r["model"] == "standard"])
    assert summary["models"][0]["accuracy"] == pytest.approx(accuracy)
    assert json.loads(json.dumps(summary))  # plain JSON


def test_audit_of_a_bundled_split_needs_no_zip(tmp_path):
    pytest.importorskip("isnet.data.fashion_mnist")
    ctx = make_context(tmp_path)
    try:
        summary = api_audit.audit("biased", "standard", limit=4, ctx=ctx)
    except Exception as error:  # noqa: BLE001 — no Fashion-MNIST on this machine
        pytest.skip(f"bundled split unavailable: {error}")
    assert summary["images"] == 4 and Path(summary["csv"]).is_file()
