"""`napari-unet predict` on several files or a folder: the plan (no torch), then real runs with a tiny model.

The plan's refusals (name clashes, existing outputs, a file where a folder is needed) happen before any work, so
their tests check that nothing was written. The runs compare every output with a single-file prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_cli
import tifffile

from napari_unet._batch import BatchPlanError, Job, plan_batch, predict_batch, probabilities_path
from napari_unet.cli import main

# test_cli's module fixtures, shared rather than copied: the 3x64x64 stack and a tiny model trained on it
tiny_stack = test_cli.tiny_stack
base_model = test_cli.base_model

CPU = ["--device", "cpu"]


def _tiff(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def _predict(*args: object) -> int:
    return main(["predict", *map(str, args), *CPU])


@pytest.fixture
def images(tiny_stack):
    """A (3, 64, 64) stack and a (64, 64) slice of it, as arrays."""
    image = tiny_stack[2]
    return image, image[1]


# --------------------------------------------------------------------------------------------------- the plan
def test_a_folder_means_its_tiffs_sorted_and_not_recursive(tmp_path):
    for name in ("b.TIF", "a.tiff", "notes.txt", "._a.tif", "sub/c.tif"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"x")
    jobs = plan_batch([tmp_path / "in"], tmp_path / "out", probabilities=True)
    assert [job.image.name for job in jobs] == ["a.tiff", "b.TIF"]
    assert jobs[0] == Job(
        tmp_path / "in" / "a.tiff",
        tmp_path / "out" / "a_labels.tif",
        tmp_path / "out" / "a_probabilities.tif",
    )
    assert not (tmp_path / "out").exists()  # the plan writes nothing; the command creates the folder


def test_one_file_keeps_its_names_and_a_bare_probabilities_goes_beside_the_labels(tmp_path):
    image = _tiff(tmp_path / "stack.tif", np.zeros((4, 4), np.uint8))
    assert plan_batch([image], tmp_path / "seg.tif") == [Job(image, tmp_path / "seg.tif")]
    (job,) = plan_batch([image], tmp_path / "p.tif", tmp_path / "prob.tif")
    assert job.probabilities == tmp_path / "prob.tif"
    (job,) = plan_batch([image], tmp_path / "stack_labels.tif", True)
    assert job.probabilities == tmp_path / "stack_probabilities.tif"
    assert probabilities_path(Path("seg.ome.tif")) == Path("seg_probabilities.tif")
    # -o an existing folder: the folder layout, even for one file
    (tmp_path / "out").mkdir()
    assert plan_batch([image], tmp_path / "out")[0].labels == tmp_path / "out" / "stack_labels.tif"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: [d / "missing.tif"], "missing.tif: no such file"),
        (lambda d: [d / "empty"], "has no .tif or .tiff files"),
        (lambda d: [d / "a" / "x.tif", d / "b" / "X.tif"], "would both write"),
        (lambda d: [d / "a" / "x.tif", d / "a" / "x.tif"], "is given twice"),
    ],
)
def test_inputs_that_cannot_work_are_refused(tmp_path, make, message):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "a" / "x.tif", tmp_path / "b" / "X.tif"):
        _tiff(path, np.zeros((4, 4), np.uint8))
    with pytest.raises(BatchPlanError, match=message):
        plan_batch(make(tmp_path), tmp_path / "out")


def test_outputs_that_cannot_work_are_refused(tmp_path):
    a = _tiff(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    b = _tiff(tmp_path / "b.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(BatchPlanError, match="takes no file name"):
        plan_batch([a, b], tmp_path / "out", probabilities=tmp_path / "p.tif")
    # a previous run's output, given as an input now
    done = _tiff(tmp_path / "a_labels.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(BatchPlanError, match="a_labels.tif would replace an input"):
        plan_batch([a, b, done], tmp_path, overwrite=True)
    with pytest.raises(BatchPlanError, match="folder .*missing does not exist"):
        plan_batch([a], tmp_path / "missing" / "labels.tif")


# --------------------------------------------------------------------------------------------------- the runs
def test_a_folder_gives_one_output_per_file_equal_to_single_file_runs(images, base_model, tmp_path, capsys):
    stack, slice_ = images
    _tiff(tmp_path / "in" / "a.tif", stack)
    _tiff(tmp_path / "in" / "b.tiff", slice_)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "new" / "out"
    assert _predict(tmp_path / "in", "--model", base_model, "-o", out, "--probabilities") == 0
    std = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [
        "a_labels.tif",
        "a_probabilities.tif",
        "b_labels.tif",
        "b_probabilities.tif",
    ]
    assert f"2 of 2 written to {out}" in std.out and "[2/2] b.tiff: wrote" in std.out
    for name in ("a.tif", "b.tiff"):
        single, prob = tmp_path / f"single_{name}", tmp_path / f"prob_{name}"
        one = ["-o", single, "--probabilities", prob]
        assert _predict(tmp_path / "in" / name, "--model", base_model, *one) == 0
        stem = name.split(".")[0]
        for batch_file, single_file in ((f"{stem}_labels.tif", single), (f"{stem}_probabilities.tif", prob)):
            np.testing.assert_array_equal(tifffile.imread(out / batch_file), tifffile.imread(single_file))


def test_several_files_share_one_model_and_one_progress_over_all_slices(
    images, base_model, tmp_path, capsys, monkeypatch
):
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.cli import _load_image

    stack, slice_ = images
    import napari_unet.checkpoint

    files = [_tiff(tmp_path / "x" / "a.tif", stack), _tiff(tmp_path / "y" / "b.tif", slice_)]
    (tmp_path / "out").mkdir()
    loads = []
    real_load = napari_unet.checkpoint.load_checkpoint
    monkeypatch.setattr(
        napari_unet.checkpoint, "load_checkpoint", lambda path: loads.append(path) or real_load(path)
    )
    assert _predict(*files, "--model", base_model, "-o", tmp_path / "out") == 0
    assert loads == [base_model]  # the model is loaded once for the batch
    assert "2 of 2 written" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"a_labels.tif", "b_labels.tif"}

    jobs = plan_batch(files, tmp_path / "again")
    (tmp_path / "again").mkdir()
    model, meta = load_checkpoint(base_model)
    records = list(predict_batch(jobs, model, meta, load=_load_image, device="cpu"))
    slices = [r for r in records if r.kind == "slice"]
    assert {r.slices_total for r in records} == {4}  # 3 + 1 slices, known before the first file is read
    fractions = [r.fraction for r in records]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert slices[0].job_index == 0 and slices[-1].job_index == 1 and slices[-1].job.image.name == "b.tif"
    assert [r.kind for r in records if r.kind != "slice"] == ["written", "written"]


def test_a_name_clash_is_refused_before_any_work(images, base_model, tmp_path, capsys):
    a = _tiff(tmp_path / "a" / "x.tif", images[1])
    b = _tiff(tmp_path / "b" / "x.tif", images[1])
    assert _predict(a, b, "--model", base_model, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{a} and {b} would both write" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_existing_outputs_are_listed_and_kept_without_overwrite(images, base_model, tmp_path, capsys):
    files = [_tiff(tmp_path / "in" / f"{n}.tif", images[1]) for n in "abc"]
    out = tmp_path / "out"
    for name in ("a_labels.tif", "c_labels.tif"):
        _tiff(out / name, np.zeros((2, 2), np.uint8))
    assert _predict(*files, "--model", base_model, "-o", out) == 2
    err = capsys.readouterr().err
    assert "2 outputs already exist" in err and "a_labels.tif" in err and "c_labels.tif" in err
    assert "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "c_labels.tif"]  # b not started
    assert tifffile.imread(out / "a_labels.tif").shape == (2, 2)
    assert _predict(*files, "--model", base_model, "-o", out, "--overwrite") == 0
    assert tifffile.imread(out / "a_labels.tif").shape == (64, 64)


def test_a_corrupt_file_in_the_middle_is_reported_and_the_others_written(
    images, base_model, tmp_path, capsys
):
    _tiff(tmp_path / "in" / "a.tif", images[0])
    (tmp_path / "in" / "b.tif").write_bytes(b"II*\x00 this is not really a TIFF file")
    _tiff(tmp_path / "in" / "c.tif", images[1])
    out = tmp_path / "out"
    assert _predict(tmp_path / "in", "--model", base_model, "-o", out) == 1
    std = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "c_labels.tif"]
    summary = std.err.strip().splitlines()[-1]
    assert summary.startswith("napari-unet predict: error: 2 of 3 written; failed: b.tif: ")
    assert "TIFF" in summary and str(tmp_path) not in summary  # the reason, without the path again
    assert "[2/3] b.tif: failed:" in std.err


def test_a_file_name_as_output_of_several_inputs_is_refused(images, base_model, tmp_path, capsys):
    files = [_tiff(tmp_path / f"{n}.tif", images[1]) for n in "ab"]
    existing = _tiff(tmp_path / "labels.tif", np.zeros((2, 2), np.uint8))
    assert _predict(*files, "--model", base_model, "-o", existing, "--overwrite") == 2
    assert f"-o {existing} is a file" in capsys.readouterr().err
    assert _predict(*files, "--model", base_model, "-o", tmp_path / "new.tif") == 2
    assert "looks like a TIFF file name" in capsys.readouterr().err
    assert not (tmp_path / "new.tif").exists() and tifffile.imread(existing).shape == (2, 2)


def test_one_file_with_a_bare_probabilities_flag(images, base_model, tmp_path, capsys):
    image = _tiff(tmp_path / "stack.tif", images[0])
    assert _predict(image, "--model", base_model, "-o", tmp_path / "stack_labels.tif", "--probabilities") == 0
    assert tifffile.imread(tmp_path / "stack_probabilities.tif").shape == (3, 2, 64, 64)
    out = capsys.readouterr().out
    # the lines a one-file run has always printed, and no batch summary
    assert out.startswith("predicted (3, 64, 64) on ") and "written" not in out


def test_a_result_line_clears_the_progress_line_first():
    """On a terminal the bar (stderr) is wiped before a result goes to stdout, so the two do not mix."""
    import io

    from napari_unet._console import ConsoleProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar_stream, out = Terminal(), io.StringIO()
    with ConsoleProgress("predict", bar_stream) as bar:
        bar.update(1, 2, force=True)
        bar.note("wrote a_labels.tif", file=out)
    assert out.getvalue() == "wrote a_labels.tif\n"
    assert bar_stream.getvalue().endswith("\r" + " " * 150 + "\r")  # wiped, and nothing left to end
