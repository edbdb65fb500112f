"""The `napari-unet` command line, end to end on tiny files (a tiny model, a few iterations).

Every option must reach the engine: each test below fails when the CLI drops one (the flag is parsed, then ignored),
checked on what the run writes (the checkpoint's config and weights, the predicted TIFF, the printed metrics).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet import __version__
from napari_unet.cli import main

TINY = ["--depth", "2", "--features", "4", "--patch", "32", "--device", "cpu"]


def _labels(rng: np.random.Generator) -> np.ndarray:
    """3 x 64 x 64 labels: bright discs are class 2, background class 1 (dense, no zeros)."""
    yy, xx = np.mgrid[:64, :64]
    labels = np.ones((3, 64, 64), np.uint8)
    for z in range(3):
        for _ in range(4):
            cy, cx = rng.integers(8, 56, 2)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 2
    return labels


@pytest.fixture(scope="module")
def tiny_stack(tmp_path_factory):
    """Image and labels TIFFs of a 3x64x64 stack (labels 1/2), read back by the tests as arrays too."""
    folder = tmp_path_factory.mktemp("stack")
    rng = np.random.default_rng(0)
    labels = _labels(rng)
    image = (labels * 80 + rng.normal(0, 10, labels.shape)).clip(0, 255).astype(np.uint8)
    img_path, lab_path = folder / "stack.tif", folder / "stack_labels.tif"
    tifffile.imwrite(
        img_path,
        image,
        imagej=True,
        resolution=(1 / 0.004, 1 / 0.004),
        metadata={"axes": "ZYX", "spacing": 0.05, "unit": "um"},
    )
    tifffile.imwrite(lab_path, labels, photometric="minisblack", metadata={"axes": "ZYX"})
    return img_path, lab_path, image, labels


@pytest.fixture(scope="module")
def strokes(tiny_stack, tmp_path_factory):
    """The stack's labels with a band of zeros: unannotated when sparse, a third class with --dense."""
    labels = tiny_stack[3].copy()
    labels[:, :, :8] = 0
    path = tmp_path_factory.mktemp("strokes") / "strokes.tif"
    tifffile.imwrite(path, labels, photometric="minisblack", metadata={"axes": "ZYX"})
    return path


@pytest.fixture(scope="module")
def base_model(tiny_stack, tmp_path_factory):
    """A tiny model after one iteration (close to its random initialisation), trained with seed 0."""
    img_path, lab_path, *_ = tiny_stack
    path = tmp_path_factory.mktemp("model") / "base.pt"
    assert main(["train", str(img_path), str(lab_path), "-o", str(path), "--iterations", "1", *TINY]) == 0
    return path


def _train(image, labels, out, *options: str) -> dict:
    """Run ``napari-unet train`` and return the written checkpoint's metadata."""
    from napari_unet.checkpoint import load_checkpoint

    assert main(["train", str(image), str(labels), "-o", str(out), *options]) == 0
    return load_checkpoint(out)[1]


def _predict(image, model, out, *options: str) -> int:
    """Run ``napari-unet predict``; returns its exit code."""
    return main(["predict", str(image), "--model", str(model), "-o", str(out), *options])


def _parameters(path) -> np.ndarray:
    """All trainable weights of a checkpoint's model, flattened (BatchNorm's running statistics left out)."""
    from napari_unet.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


# --------------------------------------------------------------------------------------------------- basics
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


def test_engine_commands_share_device_overwrite_and_threads():
    from napari_unet.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in ("train", "predict", "demo"):
        options = {opt for action in commands[name]._actions for opt in action.option_strings}
        assert {"--device", "--overwrite", "--threads"} <= options, name
        assert commands[name].get_default("device") == "auto"
    for name in ("info", "evaluate"):
        options = {opt for action in commands[name]._actions for opt in action.option_strings}
        assert not options & {"--device", "--overwrite", "--threads"}, name


# --------------------------------------------------------------------------------------------------- train
def test_train_predict_evaluate_round_trip(tiny_stack, tmp_path, capsys):
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.io import read_tiff
    from napari_unet.predict import predict_stack_sync

    img_path, lab_path, image, labels = tiny_stack
    model = tmp_path / "model.pt"
    args = ["train", str(img_path), str(lab_path), "-o", str(model), "--iterations", "4", *TINY]
    args += ["--patch", "48", "--batch", "2", "--val-slices", "2:3"]
    assert main(args) == 0, capsys.readouterr().err
    assert "saved" in capsys.readouterr().out
    _, meta = load_checkpoint(model)
    assert meta["history"]["iteration"][-1] == 4 and meta["extra"]["train_config"]["batch_size"] == 2
    # never overwrite without --overwrite
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0

    pred, prob = tmp_path / "pred.tif", tmp_path / "prob.tif"
    options = ["--probabilities", str(prob), "--tile", "48", "--device", "cpu"]
    assert _predict(img_path, model, pred, *options) == 0, capsys.readouterr().err
    expected = predict_stack_sync(
        image, *load_checkpoint(model), tile=48, device="cpu", want_probabilities=True
    )
    (layer,) = read_tiff(pred)
    assert layer.is_labels
    np.testing.assert_array_equal(np.asarray(layer.data), expected.labels)
    assert np.allclose(layer.scale[-2:], (0.004, 0.004)) and np.isclose(layer.scale[0], 0.05)
    probs = tifffile.imread(prob)
    assert probs.shape == (3, 2, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected.probabilities, atol=1e-6)

    capsys.readouterr()
    assert main(["evaluate", str(pred), str(lab_path), "--foreground", "2"]) == 0
    out = capsys.readouterr().out.lower()
    assert "dice" in out and "pixel error" in out and "rand" in out


def test_train_options_reach_the_checkpoint(tiny_stack, strokes, tmp_path):
    """--preset, --dense, --padding, --lr, --seed, --val-slices, --batch and the architecture flags."""
    img_path, *_ = tiny_stack
    args = [*TINY, "--iterations", "1", "--preset", "paper", "--dense", "--padding", "same"]
    args += ["--lr", "0.0123", "--seed", "7", "--val-slices", "1:2", "--batch", "3"]
    meta = _train(img_path, strokes, tmp_path / "m.pt", *args)
    config, extra = meta["extra"]["train_config"], meta["extra"]
    # the paper preset underneath: no BatchNorm, validation every 200 iterations, elastic deformation on
    assert meta["model_kwargs"]["batch_norm"] is False and config["val_every"] == 200 and config["elastic"]
    # the options on top of it
    assert meta["model_kwargs"]["depth"] == 2 and meta["model_kwargs"]["features"] == 4
    assert meta["model_kwargs"]["padding"] == "same" and config["padding"] == "same"
    assert config["lr"] == 0.0123 and config["seed"] == 7 and config["batch_size"] == 3
    assert config["iterations"] == 1 and config["minutes"] is None
    # --dense: 0 is a class of its own; --val-slices: slice 1 held out, 0 and 2 trained on
    assert config["dense"] is True and meta["label_values"] == [0, 1, 2]
    assert extra["val_slices"] == [1] and extra["train_slices"] == [0, 2]


def test_val_fraction_zero_trains_on_every_painted_slice(tiny_stack, strokes, tmp_path, capsys):
    img_path, *_ = tiny_stack
    meta = _train(img_path, strokes, tmp_path / "m.pt", *TINY, "--iterations", "1", "--val-fraction", "0")
    assert meta["extra"]["train_config"]["val_fraction"] == 0.0
    assert not meta["extra"]["val_slices"] and len(meta["extra"]["train_slices"]) == 3
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", str(img_path), str(strokes), "-o", str(tmp_path / "n.pt"), "--val-fraction", "1"])
    assert "--val-fraction must be a number from 0 to below 1" in capsys.readouterr().err


def test_sparse_is_the_default(tiny_stack, strokes, tmp_path):
    img_path, *_ = tiny_stack
    meta = _train(img_path, strokes, tmp_path / "m.pt", *TINY, "--iterations", "1")
    config = meta["extra"]["train_config"]
    assert config["dense"] is False and meta["label_values"] == [1, 2]  # sparse: 0 is not annotated
    assert config["lr"] == 3e-3 and config["seed"] == 0  # the fast-cpu defaults


@pytest.mark.parametrize(
    ("budget", "minutes", "iterations"),
    [([], 2.0, None), (["--minutes", "0.5"], 0.5, None), (["--iterations", "7"], None, 7)],
)
def test_budget_reaches_the_trainer(tiny_stack, tmp_path, monkeypatch, budget, minutes, iterations):
    """The budget, checked on the config handed to the trainer (which is replaced: no ten-minute run)."""
    import napari_unet.cli as cli
    from napari_unet.config import TrainConfig

    seen = {}

    def fake_train_to_file(image, labels, config, out, **kwargs):
        seen.update(config=config, **kwargs)
        return None  # as if interrupted at once

    monkeypatch.setattr(cli._train, "train_to_file", fake_train_to_file)
    img_path, lab_path, *_ = tiny_stack
    assert main(["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), *budget]) == 130
    assert seen["config"] == TrainConfig.preset("fast-cpu", minutes=minutes, iterations=iterations)
    assert seen["init"] is None and np.allclose(seen["voxel_size"], (0.05, 0.004, 0.004))


def test_init_fine_tunes_from_the_checkpoint(tiny_stack, base_model, tmp_path):
    """With a tiny learning rate, a fine-tuned model keeps the weights it started from."""
    img_path, lab_path, *_ = tiny_stack
    common = [*TINY, "--iterations", "1", "--seed", "1", "--lr", "1e-9"]
    tuned = tmp_path / "tuned.pt"
    meta = _train(img_path, lab_path, tuned, *common, "--init", str(base_model))
    assert meta["extra"]["finetuned_from"]
    fresh = tmp_path / "fresh.pt"
    _train(img_path, lab_path, fresh, *common)
    start = _parameters(base_model)
    assert np.abs(_parameters(tuned) - start).max() < 1e-6
    assert np.abs(_parameters(fresh) - start).max() > 1e-2  # the seed-1 initialisation is another network


def test_a_new_model_starts_pretrained_unless_from_scratch(tiny_stack, tmp_path, capsys):
    """The default architecture starts from the shipped EM-pretrained body; --from-scratch opts out."""
    img_path, lab_path, *_ = tiny_stack
    common = ["--iterations", "1", "--patch", "32", "--device", "cpu"]
    meta = _train(img_path, lab_path, tmp_path / "pre.pt", *common)
    assert meta["extra"]["start"] == "EM-pretrained (fresh head)"
    assert "setup: " in (err := capsys.readouterr().err) and "start: EM-pretrained" in err
    meta = _train(img_path, lab_path, tmp_path / "scratch.pt", *common, "--from-scratch")
    assert meta["extra"]["start"] == "random weights (from scratch)"
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                str(img_path),
                str(lab_path),
                "-o",
                str(tmp_path / "x.pt"),
                "--init",
                "m.pt",
                "--from-scratch",
            ]
        )
    assert "not allowed with" in capsys.readouterr().err


def test_bad_slices_and_budgets_are_usage_errors(tiny_stack, tmp_path, capsys):
    img_path, lab_path, *_ = tiny_stack
    args = ["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), "--iterations", "1"]
    assert main([*args, "--val-slices", "3:1"]) == 2
    assert "--val-slices 3:1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--minutes", "1"])  # one budget only
    assert "not allowed with" in capsys.readouterr().err


def test_train_rejects_shape_mismatch(tiny_stack, tmp_path, capsys):
    img_path, _, image, _ = tiny_stack
    other = tmp_path / "other_labels.tif"
    tifffile.imwrite(other, np.ones((2, 64, 64), np.uint8), photometric="minisblack")
    assert main(["train", str(img_path), str(other), "-o", str(tmp_path / "m.pt"), "--iterations", "1"]) == 2
    assert "same shape" in capsys.readouterr().err


def test_threads_option_sets_torch_threads_and_rejects_zero(tiny_stack, tmp_path, capsys):
    import torch

    img_path, lab_path, *_ = tiny_stack
    for bad in ("0", "auto", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), "--threads", bad])
        assert exit_info.value.code == 2
        assert "threads must be a whole number of at least 1" in capsys.readouterr().err
    before = torch.get_num_threads()
    try:
        args = ["train", str(img_path), str(lab_path), "-o", str(tmp_path / "m.pt"), "--iterations", "1"]
        assert main([*args, *TINY, "--threads", "2"]) == 0, capsys.readouterr().err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------- predict
def test_tta_averages_the_eight_flips(tiny_stack, base_model, tmp_path):
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack_sync

    img_path, _, image, _ = tiny_stack
    pred, prob = tmp_path / "pred.tif", tmp_path / "prob.tif"
    assert _predict(img_path, base_model, pred, "--probabilities", str(prob), "--tta", "--device", "cpu") == 0
    model, meta = load_checkpoint(base_model)
    with_tta = predict_stack_sync(image, model, meta, want_probabilities=True, tta=True, device="cpu")
    without = predict_stack_sync(image, model, meta, want_probabilities=True, tta=False, device="cpu")
    np.testing.assert_allclose(tifffile.imread(prob), with_tta.probabilities, atol=1e-6)
    np.testing.assert_array_equal(tifffile.imread(pred), with_tta.labels)
    # a network close to its random start is far from flip-invariant: TTA changes its probabilities
    assert np.abs(with_tta.probabilities - without.probabilities).max() > 1e-3


def test_tile_and_batch_take_auto_or_a_number(tiny_stack, base_model, tmp_path, capsys):
    img_path, *_ = tiny_stack
    out = tmp_path / "p.tif"
    for bad in (["--tile", "8"], ["--tile", "big"], ["--batch", "0"]):
        with pytest.raises(SystemExit):
            _predict(img_path, base_model, out, *bad)
        assert "must be 'auto' or a whole number of at least" in capsys.readouterr().err
    assert _predict(img_path, base_model, out, "--tile", "32", "--batch", "auto", "--device", "cpu") == 0
    assert "with tile 32," in capsys.readouterr().out


def test_predict_refuses_a_non_checkpoint(tiny_stack, tmp_path, capsys):
    img_path, *_ = tiny_stack
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert _predict(img_path, bogus, tmp_path / "p.tif") != 0
    assert "bogus.pt" in capsys.readouterr().err
    assert not (tmp_path / "p.tif").exists()


# --------------------------------------------------------------------------------------------------- evaluate
def test_evaluate_slices_scores_those_slices_only(tiny_stack, tmp_path, capsys):
    from napari_unet.metrics import evaluate, format_metrics

    _, lab_path, _, truth = tiny_stack
    rng = np.random.default_rng(1)
    pred = truth.copy()
    for z, share in enumerate((0.02, 0.1, 0.3)):  # a different error on every slice
        flip = rng.random(truth[z].shape) < share
        pred[z][flip] = 3 - pred[z][flip]
    pred_path = tmp_path / "pred.tif"
    tifffile.imwrite(pred_path, pred, photometric="minisblack", metadata={"axes": "ZYX"})

    printed = {}
    for chosen in (None, "1:3", "0:2"):
        capsys.readouterr()
        extra = [] if chosen is None else ["--slices", chosen]
        assert main(["evaluate", str(pred_path), str(lab_path), "--foreground", "2", *extra]) == 0
        printed[chosen] = capsys.readouterr().out
    assert printed["1:3"] == format_metrics(evaluate(pred[1:3], truth[1:3], foreground=2)) + "\n"
    assert printed["0:2"] == format_metrics(evaluate(pred[0:2], truth[0:2], foreground=2)) + "\n"
    assert len({printed[None], printed["1:3"], printed["0:2"]}) == 3


def test_evaluate_against_strokes_leaves_their_zeros_out(tiny_stack, strokes, capsys):
    """A sparse model never predicts 0: the strokes' 0 means "not annotated", not a class."""
    _, lab_path, _, truth = tiny_stack
    assert main(["evaluate", str(lab_path), str(strokes)]) == 0
    out = capsys.readouterr().out
    assert "taken as not annotated" in out
    assert "1.000" in out  # the prediction equals the strokes wherever they are painted


def test_every_command_and_argument_has_help():
    from napari_unet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name, command in sub.choices.items():
        assert command.description and "examples:" in (command.epilog or ""), name
        for action in command._actions:
            assert action.help, f"napari-unet {name}: {action.dest} has no help text"
