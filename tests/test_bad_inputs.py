"""The must-show corpus of issue 14: bad and odd inputs to train, predict, evaluate and info.

Every case runs through ``napari_unet.cli.main`` in a folder of tiny files: a bad input ends with one line on
stderr, ``napari-unet CMD: error: ...`` (no traceback) and a non-zero exit, and leaves every file of the folder
byte for byte as it was, with nothing new in it; an odd but legitimate input gives a correct result. A few cases go
through a subprocess to prove there is no traceback; Ctrl-C in train and predict leaves no half-written file; a
crafted model file runs no code.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.checkpoint import CHECKPOINT_VERSION, read_checkpoint, save_checkpoint
from napari_unet.cli import main
from napari_unet.model import UNet

# the corpus writes 3-slice stacks the way users do (no photometric): tifffile warns that it stores planar RGB
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*stored as RGB with separate component planes:DeprecationWarning"
)

TINY = [
    "--depth",
    "2",
    "--features",
    "4",
    "--patch",
    "16",
    "--batch",
    "1",
    "--device",
    "cpu",
    "--from-scratch",
]
FAST = ["--iterations", "2", *TINY]


class _Payload:
    """Unpickling this creates ``path``: the proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tif(path: Path, data: np.ndarray, **kwargs) -> Path:
    tifffile.imwrite(path, data, photometric=kwargs.pop("photometric", "minisblack"), **kwargs)
    return path


def _tiny_model(path: Path, label_values=(1, 2)) -> Path:
    torch.manual_seed(7)
    model = UNet(in_channels=1, n_classes=len(label_values), depth=2, features=4, padding="same")
    save_checkpoint(
        path,
        model,
        normalization={"mode": "percentile", "low": 0.0, "high": 255.0},
        label_values=list(label_values),
        class_names=[f"class {v}" for v in label_values],
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every input of the corpus, in one folder (the cases hash it before and after)."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    labels = np.ones((4, 32, 32), np.uint8)
    labels[:, :, 16:] = 2
    image = (labels * 90 + rng.normal(0, 8, labels.shape)).clip(0, 255).astype(np.uint8)
    f = {"image": _tif(d / "img.tif", image), "labels": _tif(d / "img_labels.tif", labels)}
    f["labels_short"] = _tif(d / "short_labels.tif", labels[:2])
    f["labels_zero"] = _tif(d / "zero_labels.tif", np.zeros_like(labels))
    f["labels_one"] = _tif(d / "one_labels.tif", np.where(labels == 1, 1, 0).astype(np.uint8))
    f["labels_float"] = _tif(d / "float_labels.tif", labels.astype(np.float32) * 0.37)
    f["labels_negative"] = _tif(d / "neg_labels.tif", (labels.astype(np.int16) - 2))
    f["labels_huge"] = _tif(d / "huge_labels.tif", labels.astype(np.uint32) * 70000)
    f["labels_1_1000"] = _tif(d / "big_labels.tif", np.where(labels == 1, 1, 1000).astype(np.uint16))
    f["image_4d"] = _tif(d / "four_d.tif", np.zeros((2, 3, 32, 32), np.uint8))
    f["image_5d"] = _tif(d / "five_d.tif", np.zeros((2, 2, 2, 32, 32), np.uint8))
    f["image_rgb"] = _tif(d / "rgb.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    nan = image.astype(np.float32)
    nan[:, 4:9, 4:9] = np.nan
    nan[0, 20, 20] = np.inf
    f["image_nan"] = _tif(d / "nan.tif", nan)
    f["image_all_nan"] = _tif(d / "all_nan.tif", np.full((4, 32, 32), np.nan, np.float32))
    f["image_constant"] = _tif(d / "constant.tif", np.full((4, 32, 32), 7, np.uint8))
    f["image_10"] = _tif(d / "ten.tif", image[0, :10, 11:21])
    f["labels_10"] = _tif(d / "ten_labels.tif", labels[0, :10, 11:21])
    f["planar3"] = d / "planar3.tif"
    tifffile.imwrite(f["planar3"], image[:3])  # no photometric: tifffile stores planar RGB
    f["planar3_labels"] = d / "planar3_labels.tif"
    tifffile.imwrite(f["planar3_labels"], labels[:3])
    f["empty"] = d / "empty.tif"
    f["empty"].write_bytes(b"")
    f["text"] = d / "notes.tif"
    f["text"].write_text("not an image\n" * 20)
    data = f["image"].read_bytes()
    f["truncated"] = d / "truncated.tif"
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["folder"] = d / "a_folder.tif"
    f["folder"].mkdir()
    f["model"] = _tiny_model(d / "model.pt")
    f["model_state_dict"] = d / "state_dict.pt"
    torch.save(UNet(depth=2, features=4).state_dict(), f["model_state_dict"])  # another tool's file
    newer = read_checkpoint(f["model"])
    newer["version"] = CHECKPOINT_VERSION + 1
    f["model_newer"] = d / "newer.pt"
    torch.save(newer, f["model_newer"])
    f["marker"] = d.parent / f"{d.name}-code-ran"
    f["model_crafted"] = d / "crafted.pt"
    torch.save({"format": "napari-unet", "version": 1, "payload": _Payload(f["marker"])}, f["model_crafted"])
    f["foreign_package"] = d / "other_tool.zip"
    import zipfile

    with zipfile.ZipFile(f["foreign_package"], "w") as z:
        z.writestr("rdf.yaml", "type: model\nformat_version: 0.5.3\n")
    f["pred"] = _tif(d / "pred_labels.tif", labels)
    f["pred_probabilities"] = _tif(d / "prob.tif", rng.random(labels.shape).astype(np.float32))
    f["existing"] = _tif(d / "existing.tif", labels)
    f["dir"] = d
    return f


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _fill(argv: list, f: dict) -> list[str]:
    """``{key}`` -> the corpus path (``{key}/name``: a path under it); ``@name`` -> a new file of the corpus
    folder."""
    out = []
    for a in argv:
        if isinstance(a, str) and a.startswith("{") and "}" in a:  # "{text}/l.tif": a path under that file
            key, rest = a[1:].split("}", 1)
            out.append(str(f[key]) + rest)
        elif isinstance(a, str) and a.startswith("@"):
            out.append(str(f["dir"] / a[1:]))
        else:
            out.append(str(a))
    return out


# (id, argv, expected substring of the one error line)
BAD = [
    ("train-shape", ["train", "{image}", "{labels_short}", "-o", "@m.pt", *FAST], "same shape"),
    ("train-labels-empty", ["train", "{image}", "{labels_zero}", "-o", "@m.pt", *FAST], "are all 0"),
    ("train-labels-one-class", ["train", "{image}", "{labels_one}", "-o", "@m.pt", *FAST], "only one class"),
    ("train-labels-float", ["train", "{image}", "{labels_float}", "-o", "@m.pt", *FAST], "fractional"),
    ("train-labels-negative", ["train", "{image}", "{labels_negative}", "-o", "@m.pt", *FAST], "negative"),
    ("train-labels-huge", ["train", "{image}", "{labels_huge}", "-o", "@m.pt", *FAST], "65535"),
    ("train-image-4d", ["train", "{image_4d}", "{labels}", "-o", "@m.pt", *FAST], "stack axis"),
    ("train-image-5d", ["train", "{image_5d}", "{labels}", "-o", "@m.pt", *FAST], "axes"),
    ("train-image-rgb", ["train", "{image_rgb}", "{labels}", "-o", "@m.pt", *FAST], "colour"),
    ("train-all-nan", ["train", "{image_all_nan}", "{labels}", "-o", "@m.pt", *FAST], "no finite pixel"),
    ("train-constant", ["train", "{image_constant}", "{labels}", "-o", "@m.pt", *FAST], "constant"),
    ("train-patch-5", ["train", "{image}", "{labels}", "-o", "@m.pt", *FAST, "--patch", "5"], "too small"),
    ("train-batch-0", ["train", "{image}", "{labels}", "-o", "@m.pt", *FAST, "--batch", "0"], "--batch"),
    (
        "train-iterations-0",
        ["train", "{image}", "{labels}", "-o", "@m.pt", *TINY, "--iterations", "0"],
        "at least 1",
    ),
    (
        "train-minutes-neg",
        ["train", "{image}", "{labels}", "-o", "@m.pt", *TINY, "--minutes", "-1"],
        "greater than 0",
    ),
    (
        "train-val-slices-out",
        ["train", "{image}", "{labels}", "-o", "@m.pt", *FAST, "--val-slices", "2:9"],
        "past",
    ),
    (
        "train-device-unknown",
        ["train", "{image}", "{labels}", "-o", "@m.pt", *FAST, "--device", "tpu"],
        "device",
    ),
    ("train-missing-image", ["train", "@nope.tif", "{labels}", "-o", "@m.pt", *FAST], "no such file"),
    ("train-empty-image", ["train", "{empty}", "{labels}", "-o", "@m.pt", *FAST], "empty"),
    ("train-truncated", ["train", "{truncated}", "{labels}", "-o", "@m.pt", *FAST], "truncated"),
    ("train-not-tiff", ["train", "{text}", "{labels}", "-o", "@m.pt", *FAST], "TIFF"),
    ("train-folder", ["train", "{folder}", "{labels}", "-o", "@m.pt", *FAST], "folder"),
    (
        "train-out-is-input",
        ["train", "{image}", "{labels}", "-o", "{image}", "--overwrite", *FAST],
        "input file",
    ),
    (
        "train-out-missing-dir",
        ["train", "{image}", "{labels}", "-o", "@nowhere/m.pt", *FAST],
        "does not exist",
    ),
    ("train-out-exists", ["train", "{image}", "{labels}", "-o", "{existing}", *FAST], "already exists"),
    (
        "train-init-crafted",
        ["train", "{image}", "{labels}", "-o", "@m.pt", "--iterations", "2", "--init", "{model_crafted}"],
        "refused",
    ),
    (
        "predict-model-not-model",
        ["predict", "{image}", "--model", "{image}", "-o", "@l.tif"],
        "not a napari-unet",
    ),
    (
        "predict-model-other-tool",
        ["predict", "{image}", "--model", "{model_state_dict}", "-o", "@l.tif"],
        "not a napari-unet",
    ),
    ("predict-model-newer", ["predict", "{image}", "--model", "{model_newer}", "-o", "@l.tif"], "newer"),
    (
        "predict-model-crafted",
        ["predict", "{image}", "--model", "{model_crafted}", "-o", "@l.tif"],
        "refused",
    ),
    (
        "predict-model-foreign-package",
        ["predict", "{image}", "--model", "{foreign_package}", "-o", "@l.tif"],
        "another tool",
    ),
    ("predict-model-missing", ["predict", "{image}", "--model", "@none.pt", "-o", "@l.tif"], "no such file"),
    (
        "predict-out-is-input",
        ["predict", "{image}", "--model", "{model}", "-o", "{image}", "--overwrite"],
        "input",
    ),
    (
        "predict-out-exists",
        ["predict", "{image}", "--model", "{model}", "-o", "{existing}"],
        "already exists",
    ),
    (
        "predict-out-missing-dir",
        ["predict", "{image}", "--model", "{model}", "-o", "@nowhere/l.tif"],
        "not exist",
    ),
    ("predict-out-format", ["predict", "{image}", "--model", "{model}", "-o", "@l.png"], "TIFF"),
    # under a regular file: no folder can be made there, even by root (who writes into a read-only folder)
    (
        "predict-out-under-a-file",
        ["predict", "{image}", "--model", "{model}", "-o", "{text}/l.tif"],
        "is a file",
    ),
    (
        "predict-zarr-under-a-file",
        ["predict", "{image}", "--model", "{model}", "-o", "{text}/l.zarr"],
        "is a file",
    ),
    (
        "predict-probabilities-under-a-file",
        ["predict", "{image}", "--model", "{model}", "-o", "@l.tif", "--probabilities", "{text}/p.tif"],
        "is a file",
    ),
    (
        "predict-measurements-under-a-file",
        [
            "predict",
            "{image}",
            "--model",
            "{model}",
            "-o",
            "@l.zarr",
            "--instance-of",
            "2",
            "--measurements",
            "{text}/o.csv",
        ],
        "is a file",
    ),  # fmt: skip
    (
        "predict-folder-out-under-a-file",
        ["predict", "{image}", "{labels}", "--model", "{model}", "-o", "{text}/out/"],
        "is a file",
    ),
    (
        "predict-zarr-instances-3d",
        [
            "predict",
            "{image}",
            "--model",
            "{model}",
            "-o",
            "@l.zarr",
            "--instances",
            "--instance-of",
            "2",
            "--instances-3d",
            "yes",
        ],
        "3D watershed",
    ),  # fmt: skip
    ("predict-image-4d", ["predict", "{image_4d}", "--model", "{model}", "-o", "@l.tif"], "stack axis"),
    ("predict-image-rgb", ["predict", "{image_rgb}", "--model", "{model}", "-o", "@l.tif"], "colour"),
    ("predict-truncated", ["predict", "{truncated}", "--model", "{model}", "-o", "@l.tif"], "truncated"),
    ("predict-tile-5", ["predict", "{image}", "--model", "{model}", "-o", "@l.tif", "--tile", "5"], "tile"),
    (
        "predict-device",
        ["predict", "{image}", "--model", "{model}", "-o", "@l.tif", "--device", "gpu7"],
        "device",
    ),
    ("evaluate-shape", ["evaluate", "{pred}", "{labels_short}"], "shape"),
    ("evaluate-probabilities", ["evaluate", "{pred_probabilities}", "{labels}"], "fractional"),
    ("evaluate-slices-out", ["evaluate", "{pred}", "{labels}", "--slices", "2:40"], "past"),
    ("evaluate-missing", ["evaluate", "{pred}", "@gone.tif"], "no such file"),
    ("evaluate-negative", ["evaluate", "{labels_negative}", "{labels}"], "negative"),
    ("info-missing", ["info", "@gone.tif"], "no such file"),
    ("info-empty", ["info", "{empty}"], "empty"),
    ("info-not-tiff", ["info", "{text}"], "TIFF"),
    ("info-truncated", ["info", "{truncated}"], "truncated"),
    ("info-folder", ["info", "{folder}"], "folder"),
]


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_gets_one_sentence_and_changes_nothing(files, argv, expected, capsys):
    before = _snapshot(files["dir"])
    try:
        code = main(_fill(argv, files))
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(line) == 1, err
    assert line[0].startswith(f"napari-unet {argv[0]}: error:"), err
    assert expected.lower() in line[0].lower(), err
    assert _snapshot(files["dir"]) == before  # nothing changed, nothing new (no half-written output)
    assert not files["marker"].exists()  # no code ran from a crafted model


def test_corpus_has_at_least_35_cases():
    assert len(BAD) + len(ODD) >= 35
    assert {c[1][0] for c in BAD} == {"train", "predict", "evaluate", "info"}


# odd but legitimate: (id, argv, outputs that must appear)
ODD = [
    ("train-nan-pixels", ["train", "{image_nan}", "{labels}", "-o", "@nan.pt", *FAST], ["nan.pt"]),
    ("train-10x10", ["train", "{image_10}", "{labels_10}", "-o", "@ten.pt", *FAST], ["ten.pt"]),
    ("train-labels-1-1000", ["train", "{image}", "{labels_1_1000}", "-o", "@big.pt", *FAST], ["big.pt"]),
    ("train-planar-stack", ["train", "{planar3}", "{planar3_labels}", "-o", "@p3.pt", *FAST], ["p3.pt"]),
    (
        "predict-nan-pixels",
        ["predict", "{image_nan}", "--model", "{model}", "-o", "@nan_l.tif"],
        ["nan_l.tif"],
    ),
    ("predict-10x10", ["predict", "{image_10}", "--model", "{model}", "-o", "@ten_l.tif"], ["ten_l.tif"]),
    ("predict-planar-stack", ["predict", "{planar3}", "--model", "{model}", "-o", "@p3_l.tif"], ["p3_l.tif"]),
    ("evaluate-ok", ["evaluate", "{pred}", "{labels}"], []),
    ("info-planar-stack", ["info", "{planar3}"], []),
]


@pytest.mark.parametrize(("argv", "outputs"), [c[1:] for c in ODD], ids=[c[0] for c in ODD])
def test_odd_but_legitimate_input_works(files, argv, outputs, capsys):
    before = _snapshot(files["dir"])
    code = main(_fill(argv, files))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    after = _snapshot(files["dir"])
    assert {k: v for k, v in after.items() if k in before} == before  # inputs untouched
    assert sorted(set(after) - set(before)) == sorted(outputs)
    for name in outputs:
        path = files["dir"] / name
        if name.endswith(".pt"):
            ckpt = read_checkpoint(path)
            losses = ckpt["history"]["loss"]
            assert losses and all(np.isfinite(losses)), losses  # NaN pixels: the loss stays finite
        else:
            labels = tifffile.imread(path)
            assert set(np.unique(labels)) <= {1, 2}
            image = tifffile.imread(files[argv[1][1:-1]])
            assert labels.shape == image.shape
        path.unlink()  # the next case sees the folder as before


def test_labels_1_and_1000_predict_as_1_and_1000(files, tmp_path):
    out = tmp_path / "big.pt"
    assert main(_fill(["train", "{image}", "{labels_1_1000}", "-o", str(out), *FAST], files)) == 0
    labels_out = tmp_path / "l.tif"
    assert main(_fill(["predict", "{image}", "--model", str(out), "-o", str(labels_out)], files)) == 0
    assert set(np.unique(tifffile.imread(labels_out))) <= {1, 1000}
    assert read_checkpoint(out)["label_values"] == [1, 1000]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "{image}", "{labels_float}", "-o", "@m.pt", *FAST], "fractional"),
        (["predict", "{image}", "--model", "{model_crafted}", "-o", "@l.tif"], "refused"),
        (["info", "{truncated}"], "truncated"),
    ],
    ids=["train", "predict", "info"],
)
def test_subprocess_shows_no_traceback(files, argv, expected):
    before = _snapshot(files["dir"])
    run = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", *_fill(argv, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert expected in run.stderr
    assert _snapshot(files["dir"]) == before
    assert not files["marker"].exists()


def _interrupt(argv: list[str], cwd: Path, wait_for: str, timeout: float = 90.0) -> tuple[int, str, float]:
    """Start the CLI, send SIGINT once ``wait_for`` appears on stderr; (exit code, stderr, seconds to stop)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_unet.cli", *argv],
        cwd=cwd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), b"")), daemon=True)
    reader.start()
    start = time.monotonic()
    while (
        wait_for.encode() not in b"".join(seen) and proc.poll() is None and time.monotonic() - start < timeout
    ):
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the interrupt: {b''.join(seen).decode()}"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    stopped = time.monotonic() - sent
    reader.join(timeout=10)
    return proc.returncode, b"".join(seen).decode(errors="replace"), stopped


def test_ctrl_c_in_train_keeps_a_whole_model_or_nothing(files, tmp_path):
    out = tmp_path / "model.pt"
    argv = _fill(
        ["train", "{image}", "{labels}", "-o", str(out), *TINY, "--minutes", "5", "--val-slices", "3:4"],
        files,
    )
    code, err, stopped = _interrupt(argv, tmp_path, "it ")
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert stopped < 5.0, stopped
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".partial", ".tmp"))]
    if out.exists():  # the best checkpoint so far, complete
        assert read_checkpoint(out)["format"] == "napari-unet"
        assert "kept the best checkpoint" in err
    else:
        assert "nothing was written" in err


def test_ctrl_c_in_predict_leaves_no_half_written_file(files, tmp_path):
    big = _tif(
        tmp_path / "big.tif", np.random.default_rng(1).integers(0, 255, (60, 256, 256), dtype=np.uint8)
    )
    out = tmp_path / "big_labels.tif"
    argv = _fill(["predict", str(big), "--model", "{model}", "-o", str(out), "--tile", "64", "--tta"], files)
    code, err, stopped = _interrupt(argv, tmp_path, "slice ")
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert stopped < 5.0, stopped
    assert not out.exists() or tifffile.imread(out).shape == (60, 256, 256)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["big.tif"], ["big.tif", "big_labels.tif"])


@pytest.mark.parametrize("out", ["l.tif", "l.zarr", "sub/"])
def test_a_read_only_output_folder_is_refused_before_any_work(files, tmp_path, out, capsys, monkeypatch):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anyway: the permission check answers as for a user
            real = os.access
            monkeypatch.setattr(
                os, "access", lambda p, mode: real(p, mode) and not (Path(p) == folder and mode & os.W_OK)
            )
        started = time.perf_counter()
        argv = ["predict", str(files["image"]), "--model", str(files["model"]), "-o", str(folder / out)]
        if out.endswith("/"):
            argv.insert(2, str(files["labels"]))  # several inputs: -o is a folder to create
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not writable" in err and len(err.strip().splitlines()) == 1, err
        assert time.perf_counter() - started < 5 and not any(folder.iterdir())
    finally:
        folder.chmod(0o755)
