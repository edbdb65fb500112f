"""``napari-unet predict`` into OME-Zarr: same labels as the TIFF path, refusals before any work, and resume.

The resume test is the real thing: a ``napari-unet predict`` subprocess killed with SIGKILL half way, re-run with
the same command, compared bit for bit with an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_unet.checkpoint import save_checkpoint
from napari_unet.cli import main
from napari_unet.model import UNet
from napari_unet.ngff import store_state

CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained model (seeded) and a (6, 64, 64) uint8 stack with a voxel size."""
    folder = tmp_path_factory.mktemp("zarr")
    torch.manual_seed(7)
    model = UNet(in_channels=1, n_classes=2, depth=2, features=4)
    model_path = folder / "tiny.pt"
    norm = {"mode": "percentile", "low": 0.0, "high": 255.0}
    save_checkpoint(
        model_path, model, normalization=norm, label_values=[0, 255], class_names=["membrane", "cell"]
    )
    image = np.random.default_rng(0).integers(0, 256, (6, 64, 64), dtype=np.uint8)
    image_path = folder / "stack.tif"
    tifffile.imwrite(
        image_path,
        image,
        imagej=True,
        resolution=(0.25, 0.25),
        metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"},
    )
    return model_path, image_path, image


def _predict(image, model, out, *options) -> int:
    return main(["predict", str(image), "--model", str(model), "-o", str(out), *map(str, options), *CPU])


def test_zarr_outputs_equal_the_tiff_outputs(tiny, tmp_path):
    model, image, data = tiny
    assert (
        _predict(image, model, tmp_path / "l.tif", "--probabilities", tmp_path / "p.tif", "--tile", 48) == 0
    )
    assert (
        _predict(image, model, tmp_path / "l.zarr", "--probabilities", tmp_path / "p.zarr", "--tile", 48) == 0
    )
    root = zarr.open_group(str(tmp_path / "l.zarr"), mode="r")
    assert np.array_equal(root["labels/segmentation/0"][:], tifffile.imread(tmp_path / "l.tif"))
    assert np.array_equal(root["0"][:], data)  # the image the labels belong to
    probs = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")["0"][:]
    assert np.array_equal(np.moveaxis(probs, 0, 1), tifffile.imread(tmp_path / "p.tif"))
    assert store_state(tmp_path / "l.zarr") == "complete" and store_state(tmp_path / "p.zarr") == "complete"
    # and a Zarr store as input (here: the image inside the labels store) predicts the same labels
    assert _predict(tmp_path / "l.zarr", model, tmp_path / "again.tif", "--tile", 48) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "again.tif"), tifffile.imread(tmp_path / "l.tif"))


@pytest.mark.parametrize(
    "out, extra, message",
    [
        ("labels.png", [], "write a TIFF (.tif, .tiff) or an OME-Zarr store (.zarr)"),
        ("labels.zarr", ["--probabilities", "p.tif"], "give both as .zarr stores or both as TIFF files"),
        ("labels.tif", ["--workers", "2"], "the workers write into OME-Zarr stores"),
        ("labels.zarr", ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one of them"),
        (
            "labels.zarr",
            ["--instances", "--instance-of", "255", "--instances-3d", "yes"],
            "--instances-3d yes on",
        ),
        ("labels.zarr", ["--instances", "i.tif", "--instance-of", "255"], "give both as .zarr stores"),
        ("labels.tif", ["--instances", "i.zarr", "--instance-of", "255"], "give both as .zarr stores"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(
    tiny, tmp_path, capsys, out, extra, message
):
    model, image, _ = tiny
    os.chdir(tmp_path)
    started = time.perf_counter()
    assert _predict(image, model, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - started < 5 and not any(tmp_path.iterdir())  # nothing written, no model run


def test_auto_3d_objects_are_refused_on_zarr_output_before_any_work(tiny, tmp_path, capsys):
    model, _, data = tiny
    iso = tmp_path / "iso.tif"  # 4 x 4 x 4 nm: --instances-3d auto would cut 3D objects
    tifffile.imwrite(
        iso, data, imagej=True, resolution=(0.25, 0.25), metadata={"axes": "ZYX", "spacing": 4, "unit": "nm"}
    )
    assert _predict(iso, model, tmp_path / "l.zarr", "--instances", "--instance-of", 255) == 2
    assert "--instances-3d auto (near-isotropic voxels) asks for 3D objects" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iso.tif"]


def test_a_finished_store_is_kept_and_other_settings_do_not_resume(tiny, tmp_path, capsys):
    model, image, _ = tiny
    assert _predict(image, model, tmp_path / "l.zarr", "--tile", 48) == 0
    assert _predict(image, model, tmp_path / "l.zarr", "--tile", 48) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    # an unfinished store of other settings (here --tta) is not resumed with those settings
    flags = zarr.open_group(str(tmp_path / "l.zarr"), mode="r+")
    info = dict(flags.attrs["napari_unet"])
    flags.attrs["napari_unet"] = {**info, "complete": False}
    assert _predict(image, model, tmp_path / "l.zarr", "--tile", 48, "--tta") == 1
    assert "other settings (tta)" in capsys.readouterr().err


def _done_flags(store: Path) -> int:
    folder = store / "napari_unet_done"
    return sum(1 for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else 0


def test_killed_half_way_the_same_command_finishes_and_equals_an_uninterrupted_run(tiny, tmp_path):
    model, _, _ = tiny
    # slow enough to be caught half way: 40 slices of 192 x 192 in small tiles
    image = np.random.default_rng(1).integers(0, 256, (40, 192, 192), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", image, photometric="minisblack", metadata={"axes": "ZYX"})
    command = [
        sys.executable, "-m", "napari_unet.cli", "predict", str(tmp_path / "big.tif"), "--model", str(model),
        "-o", str(tmp_path / "l.zarr"), "--probabilities", str(tmp_path / "p.zarr"), "--tile", "48", "--threads", "1",
        "--instances", "--instance-of", "255", *CPU,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _done_flags(tmp_path / "l.zarr") < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = _done_flags(tmp_path / "l.zarr")
    assert proc.returncode == -signal.SIGKILL and 8 <= done < 40, f"killed after {done} of 40 slices"
    assert store_state(tmp_path / "l.zarr") == "partial" and store_state(tmp_path / "p.zarr") == "partial"
    assert store_state(tmp_path / "l.zarr" / "labels" / "instances") == "partial"

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{done} of 40 slice(s) already done, {40 - done} to go" in again.stderr
    assert store_state(tmp_path / "l.zarr") == "complete"

    assert _predict(tmp_path / "big.tif", model, tmp_path / "ref.zarr", "--probabilities", tmp_path / "refp.zarr",
                    "--tile", 48, "--instances", "--instance-of", 255) == 0  # fmt: skip
    for name, ref, key in (
        ("l.zarr", "ref.zarr", "labels/segmentation/0"),
        ("p.zarr", "refp.zarr", "0"),
        ("l.zarr", "ref.zarr", "labels/instances/0"),  # the objects too: cut per slice, linked at the end
    ):
        a, b = (zarr.open_group(str(tmp_path / n), mode="r") for n in (name, ref))
        assert np.array_equal(a[key][:], b[key][:]), key
    assert np.array_equal(zarr.open_group(str(tmp_path / "l.zarr"), mode="r")["0"][:], image)
