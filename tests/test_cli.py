"""The `napari-unet` command line, end to end on tiny files (a tiny model, a few iterations)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet import __version__
from napari_unet.cli import main


@pytest.fixture
def tiny_stack(tmp_path):
    """A 3x64x64 image whose bright discs are class 2 and background class 1 (dense, no zeros)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    labels = np.ones((3, 64, 64), np.uint8)
    for z in range(3):
        for _ in range(4):
            cy, cx = rng.integers(8, 56, 2)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 2
    image = (labels * 80 + rng.normal(0, 10, labels.shape)).clip(0, 255).astype(np.uint8)
    img_path, lab_path = tmp_path / "stack.tif", tmp_path / "stack_labels.tif"
    tifffile.imwrite(
        img_path,
        image,
        imagej=True,
        resolution=(1 / 0.004, 1 / 0.004),
        metadata={"axes": "ZYX", "spacing": 0.05, "unit": "um"},
    )
    tifffile.imwrite(lab_path, labels, photometric="minisblack", metadata={"axes": "ZYX"})
    return img_path, lab_path, image, labels


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and __version__ in out.stdout


def test_info_describes_axes_shape_and_voxel_size(tiny_stack, capsys):
    img_path, *_ = tiny_stack
    assert main(["info", str(img_path)]) == 0
    out = capsys.readouterr().out
    assert "ZYX" in out and "(3, 64, 64)" in out and "uint8" in out
    assert "0.05" in out and "0.004" in out


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.tif")]) != 0
    assert "nope.tif: no such file" in capsys.readouterr().err


def test_train_predict_evaluate_round_trip(tiny_stack, tmp_path, capsys):
    img_path, lab_path, image, labels = tiny_stack
    model = tmp_path / "model.pt"
    args = [
        "train",
        str(img_path),
        str(lab_path),
        "-o",
        str(model),
        "--iterations",
        "4",
        "--depth",
        "2",
        "--features",
        "4",
        "--patch",
        "48",
        "--batch",
        "2",
        "--val-slices",
        "2:3",
        "--device",
        "cpu",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert model.exists()
    # never overwrite without --overwrite
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err

    pred = tmp_path / "pred.tif"
    prob = tmp_path / "prob.tif"
    assert (
        main(
            [
                "predict",
                str(img_path),
                "--model",
                str(model),
                "-o",
                str(pred),
                "--probabilities",
                str(prob),
                "--tile",
                "48",
                "--device",
                "cpu",
            ]
        )
        == 0
    ), capsys.readouterr().err
    from napari_unet.io import read_tiff

    (layer,) = read_tiff(pred)
    assert layer.is_labels and layer.data.shape == image.shape
    assert set(np.unique(np.asarray(layer.data))) <= {1, 2}  # the label values the model was trained on
    assert np.allclose(layer.scale[-2:], (0.004, 0.004)) and np.isclose(layer.scale[0], 0.05)
    probs = tifffile.imread(prob)
    assert probs.shape == (3, 2, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)

    capsys.readouterr()
    assert main(["evaluate", str(pred), str(lab_path), "--foreground", "2"]) == 0
    out = capsys.readouterr().out.lower()
    assert "dice" in out and "pixel error" in out and "rand" in out


def test_predict_refuses_a_non_checkpoint(tiny_stack, tmp_path, capsys):
    img_path, *_ = tiny_stack
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["predict", str(img_path), "--model", str(bogus), "-o", str(tmp_path / "p.tif")]) != 0
    assert "bogus.pt" in capsys.readouterr().err
    assert not (tmp_path / "p.tif").exists()


def test_train_rejects_shape_mismatch(tiny_stack, tmp_path, capsys):
    img_path, _, image, _ = tiny_stack
    other = tmp_path / "other_labels.tif"
    tifffile.imwrite(other, np.ones((2, 64, 64), np.uint8), photometric="minisblack")
    assert main(["train", str(img_path), str(other), "-o", str(tmp_path / "m.pt"), "--iterations", "1"]) == 2
    assert "same shape" in capsys.readouterr().err


def test_threads_option_sets_torch_threads_and_rejects_zero(tiny_stack, tmp_path, capsys):
    import torch

    img_path, lab_path, *_ = tiny_stack
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "threads must be at least 1" in capsys.readouterr().err
    before = torch.get_num_threads()
    try:
        args = ["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), "--iterations", "1"]
        args += ["--depth", "2", "--features", "4", "--patch", "48", "--device", "cpu", "--threads", "2"]
        assert main(args) == 0, capsys.readouterr().err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
