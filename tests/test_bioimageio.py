"""bioimage.io export: ``bioimageio test`` (bioimageio.core, for real) passes on an exported package, the package
predicts the same labels as the ``.pt`` model, and napari-unet reads it back as the same model.

Skipped only without the ``bioimageio`` extra (CI installs it).
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.bioimageio import is_package, read_package_checkpoint
from napari_unet.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from napari_unet.cli import main
from napari_unet.generators import drain
from napari_unet.model import UNet
from napari_unet.predict import predict_stack

bioimageio_core = pytest.importorskip("bioimageio.core")

LABELS = [1, 7]


def _model(path, padding: str):
    torch.manual_seed(7)
    model = UNet(in_channels=1, n_classes=2, depth=2, features=4, padding=padding)
    save_checkpoint(
        path,
        model,
        normalization={"mode": "percentile", "low": 10.0, "high": 240.0, "low_pct": 1.0, "high_pct": 99.8},
        label_values=LABELS,
        class_names=["membrane", "cell"],
        history={"iteration": [1, 2], "loss": [0.9, 0.8], "val_iteration": [2], "val_mean_dice": [0.5]},
    )
    return path


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((2, 80, 80)) * 255).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, image):
    """A same-padding and a valid-padding model, each exported (the first through the CLI, which runs the test)."""
    from napari_unet.bioimageio import export_package

    d = tmp_path_factory.mktemp("bioimageio")
    tifffile.imwrite(d / "image.tif", image[:, :, :], photometric="minisblack")
    out = {}
    pt = _model(d / "same.pt", "same")
    assert (
        main(["export", str(pt), str(d / "same.zip"), "--image", str(d / "image.tif"), "--author", "T"]) == 0
    )
    out["same"] = (pt, d / "same.zip", None)
    pt = _model(d / "valid.pt", "valid")
    out["valid"] = (pt, d / "valid.zip", export_package(pt, d / "valid.zip", image=image))
    return out


def test_cli_export_runs_bioimageio_test_and_it_passes(exported, capsys):
    # the fixture's CLI run printed its verdict; the package is a spec-0.5 model with both weight formats
    pt, package, _ = exported["same"]
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        rdf = z.read("rdf.yaml").decode()
    assert {
        "rdf.yaml",
        "weights.pt",
        "weights_torchscript.pt",
        "napari_unet_model.py",
        "napari_unet.json",
    } <= names
    assert {"test_input.npy", "test_output.npy", "cover.png", "README.md"} <= names
    assert "format_version: 0.5" in rdf and "scale_linear" in rdf and "halo: " in rdf


def test_bioimageio_test_passes_on_a_valid_padding_export(exported):
    from napari_unet.bioimageio import test_package

    passed, text = test_package(exported["valid"][1])
    assert passed, text
    assert "torchscript" in text and "pytorch_state_dict" in text


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_package_predicts_the_labels_of_the_pt_model(exported, image, padding):
    """bioimageio.core runs the package on a whole slice; napari-unet's overlap-tile prediction of the .pt model
    gives the same labels wherever the package's own border (zeros, same padding) does not reach."""
    from bioimageio.core import Tensor, predict

    pt, package, _ = exported[padding]
    model, meta = load_checkpoint(pt)
    slice_ = image[0]
    result = predict(
        model=str(package), inputs={"raw": Tensor(slice_[None, None], dims=("batch", "channel", "y", "x"))}
    )
    probabilities = result.members["probabilities"].data.values[0]
    package_labels = np.asarray(LABELS)[probabilities.argmax(0)]
    ours = drain(predict_stack(slice_, model, meta, device="cpu")).labels
    if padding == "valid":  # the package's output is the valid centre; napari-unet mirrors the border
        s = model.shrink
        ours = ours[s:-s, s:-s]
        assert package_labels.shape == ours.shape
        assert np.array_equal(package_labels, ours)
    else:
        h = model.halo
        assert package_labels.shape == ours.shape
        assert np.array_equal(package_labels[h:-h, h:-h], ours[h:-h, h:-h])
        assert (package_labels == ours).mean() > 0.9
    assert set(np.unique(package_labels)) == set(LABELS)  # a real test: both classes appear


def test_napari_unet_reads_its_package_back_as_the_same_model(exported, image, tmp_path):
    pt, package, _ = exported["same"]
    assert is_package(package) and not is_package(pt)
    a, b = read_checkpoint(pt), read_checkpoint(package)
    assert b["label_values"] == LABELS and b["model_kwargs"] == a["model_kwargs"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    tifffile.imwrite(tmp_path / "img.tif", image.astype(np.uint8), photometric="minisblack")
    for model, out in ((pt, "from_pt.tif"), (package, "from_zip.tif")):
        assert (
            main(["predict", str(tmp_path / "img.tif"), "--model", str(model), "-o", str(tmp_path / out)])
            == 0
        )
    assert np.array_equal(
        tifffile.imread(tmp_path / "from_pt.tif"), tifffile.imread(tmp_path / "from_zip.tif")
    )


def test_a_package_whose_weights_are_a_pickle_runs_no_code(exported, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(exported["same"][1]) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if name != "weights.pt":
                dst.writestr(name, src.read(name))
        weights = tmp_path / "w.pt"
        torch.save({"x": Payload()}, weights)
        dst.write(weights, "weights.pt")
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_package_checkpoint(bad, CheckpointError)
    assert not marker.exists()


def test_export_refuses_what_is_not_a_model_and_an_existing_output(exported, tmp_path, capsys):
    pt, package, _ = exported["same"]
    before = package.read_bytes()
    assert main(["export", str(pt), str(package), "--no-test"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert package.read_bytes() == before
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["export", str(tmp_path / "notes.txt"), str(tmp_path / "x.zip")]) == 1
    assert "not a napari-unet checkpoint" in capsys.readouterr().err
    assert main(["export", str(pt), str(tmp_path / "x.tif")]) == 2
    assert ".zip" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


def test_model_card_names_classes_training_and_terms(exported):
    with zipfile.ZipFile(exported["same"][1]) as z:
        card = z.read("README.md").decode()
        meta = json.loads(z.read("napari_unet.json"))
    for text in (
        "| 0 | 1 | membrane |",
        "| 1 | 7 | cell |",
        "## Training data",
        "## Figures",
        "## Terms",
        "best validation mean Dice: 0.500",
        "CC-BY-4.0",
    ):
        assert text in card
    assert meta["label_values"] == LABELS and "state_dict" not in meta


def test_the_docks_model_loader_reads_the_package(exported):
    from napari_unet._widgets._segment_job import load_grayscale_model

    pt, package, _ = exported["valid"]
    model, meta = load_grayscale_model(package)
    reference, _ = load_checkpoint(pt)
    assert meta["label_values"] == LABELS and model.kwargs == reference.kwargs
    x = torch.rand(1, 1, model.min_input_size + 8, model.min_input_size + 8)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
