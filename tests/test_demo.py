"""`napari-unet demo`, the README's main command, on the bundled sample (a handful of iterations)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_unet.cli import main
from napari_unet.demo import overview_png


def test_demo_writes_model_prediction_overview_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "held-out slices 8-9" in printed and "dice" in printed.lower()
    pred = tifffile.imread(out / "prediction.tif")
    assert pred.shape == (10, 512, 512) and set(np.unique(pred)) <= {1, 2}
    assert (out / "model.pt").stat().st_size > 0
    import imageio.v3 as iio

    png = iio.imread(out / "overview.png")
    assert png.shape == (512, 3 * 512 + 16, 3)

    # a second run refuses to overwrite the outputs without --overwrite
    assert main(["demo", "--out", str(out), "--iterations", "1", "--device", "cpu"]) != 0
    assert "--overwrite" in capsys.readouterr().err


def test_overview_colours_membranes_of_truth_and_prediction():
    image = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    truth = np.full((16, 16), 2, np.uint8)
    truth[4] = 1
    pred = np.full((16, 16), 2, np.uint8)
    pred[:, 5] = 1
    png = overview_png(image, truth, pred)
    assert png.shape == (16, 3 * 16 + 16, 3) and png.dtype == np.uint8
    magenta = (png == (255, 0, 255)).all(axis=-1)
    assert magenta[:, :16].sum() == 0  # the raw image panel is untouched
    assert magenta[4, 24:40].all() and magenta[:, 24:40].sum() == 16
    assert magenta[:, 48 + 5].all() and magenta[:, 48:].sum() == 16
