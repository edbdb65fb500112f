"""`napari-unet demo`, the README's main command, on the bundled sample (a handful of iterations)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_unet.cli import main
from napari_unet.config import TrainConfig
from napari_unet.demo import HELD_OUT, MEMBRANE, TITLE_HEIGHT, demo_config, overview_png, sample_paths


def test_demo_writes_model_prediction_overview_and_metrics(tmp_path, capsys):
    import imageio.v3 as iio

    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.metrics import evaluate, format_metrics
    from napari_unet.predict import predict_stack_sync

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    image, truth = (tifffile.imread(p) for p in sample_paths())
    pred = tifffile.imread(out / "prediction.tif")
    assert pred.shape == image.shape == (10, 512, 512)

    # the model: 3 iterations of the CPU preset, slices 8-9 held out
    model, meta = load_checkpoint(out / "model.pt")
    assert meta["history"]["iteration"][-1] == 3
    assert meta["extra"]["val_slices"] == [8, 9] and meta["extra"]["train_slices"] == list(range(8))
    assert (
        meta["extra"]["train_config"]["iterations"] == 3 and meta["extra"]["train_config"]["minutes"] is None
    )
    # the prediction is that model's (checked on the held-out slices, the ones scored and drawn)
    held = slice(*HELD_OUT)
    again = predict_stack_sync(image, model, meta, device="cpu", slices=list(range(*HELD_OUT)))
    np.testing.assert_array_equal(pred[held], again.labels[held])
    # the printed metrics are those of the held-out slices, the picture that of the last one
    assert "held-out slices 8-9" in printed
    assert format_metrics(evaluate(pred[held], truth[held], foreground=MEMBRANE)) in printed
    png = iio.imread(out / "overview.png")
    np.testing.assert_array_equal(png, overview_png(image[9], truth[9], pred[9]))
    assert png.shape == (TITLE_HEIGHT + 512, 3 * 512 + 16, 3)  # the three panels under their titles
    for name in ("model.pt", "prediction.tif", "overview.png"):
        assert f"wrote {out / name}" in printed

    # a second run refuses to overwrite the outputs without --overwrite
    assert main(["demo", "--out", str(out), "--iterations", "1", "--device", "cpu"]) != 0
    assert "--overwrite" in capsys.readouterr().err


def test_demo_config_is_the_device_preset_with_the_held_out_slices():
    assert demo_config("cpu", minutes=3.0) == TrainConfig.preset(
        "fast-cpu", device="cpu", val_slices=(8, 10), minutes=3.0
    )
    assert demo_config("cuda:0", iterations=50) == TrainConfig.preset(
        "accurate-gpu", device="cuda:0", val_slices=(8, 10), iterations=50
    )


def test_overview_colours_membranes_of_truth_and_prediction():
    image = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    truth = np.full((16, 16), 2, np.uint8)
    truth[4] = 1
    pred = np.full((16, 16), 2, np.uint8)
    pred[:, 5] = 1
    png = overview_png(image, truth, pred)
    assert png.shape == (TITLE_HEIGHT + 16, 3 * 16 + 16, 3) and png.dtype == np.uint8
    strip, png = png[:TITLE_HEIGHT], png[TITLE_HEIGHT:]
    assert (strip < 128).any() and (strip == 255).mean() > 0.5  # dark title text on white
    magenta = (png == (255, 0, 255)).all(axis=-1)
    assert magenta[:, :16].sum() == 0  # the raw image panel is untouched
    assert magenta[4, 24:40].all() and magenta[:, 24:40].sum() == 16
    assert magenta[:, 48 + 5].all() and magenta[:, 48:].sum() == 16
