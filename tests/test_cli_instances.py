"""`napari-unet predict --instances / --measurements` and `evaluate --instance-of`, end to end with a tiny model.

What is checked is what the run writes: the instance TIFF equals the instances module applied to the written
probabilities, ids are unique uint32 with the image's voxel size, the CSV has one row per object, and evaluate's
object F1 equals an independent computation on the written files.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import test_cli
import tifffile

from napari_unet.cli import main

tiny_stack = test_cli.tiny_stack


@pytest.fixture(scope="module")
def base_model(tiny_stack, tmp_path_factory):
    """A tiny model trained long enough (60 iterations) to find the discs of class 2."""
    img_path, lab_path, *_ = tiny_stack
    path = tmp_path_factory.mktemp("objects_model") / "discs.pt"
    args = ["train", str(img_path), str(lab_path), "-o", str(path), "--iterations", "60", *test_cli.TINY]
    assert main([*args, "--lr", "0.01", "--seed", "0"]) == 0
    return path


CPU = ["--device", "cpu"]


def _predict(*args: object) -> int:
    return main(["predict", *map(str, args), *CPU])


@pytest.fixture(scope="module")
def predicted(tiny_stack, base_model, tmp_path_factory):
    """One run with labels, probabilities, instances and measurements of class 2."""
    img_path, *_ = tiny_stack
    out = tmp_path_factory.mktemp("objects")
    files = {k: out / f"{k}.tif" for k in ("labels", "probabilities", "instances")}
    files["csv"] = out / "objects.csv"
    code = _predict(
        img_path,
        "--model",
        base_model,
        "-o",
        files["labels"],
        "--probabilities",
        files["probabilities"],
        "--instances",
        files["instances"],
        "--instance-of",
        "2",
        "--measurements",
        files["csv"],
        "--instance-min-size",
        "20",
    )
    assert code == 0
    return files


def test_instances_are_the_module_applied_to_the_probabilities(predicted, capsys):
    from napari_unet.instances import InstanceConfig, choose_preset, instances_from_probability_sync
    from napari_unet.io import read_array

    instances, scale = read_array(predicted["instances"])[:2]
    instances = np.asarray(instances)
    # written losslessly in the smallest unsigned type that holds the ids
    assert instances.dtype.kind == "u" and instances.shape == (3, 64, 64)
    assert tuple(np.round(scale, 6)) == (0.05, 0.004, 0.004)
    probs = tifffile.imread(predicted["probabilities"])
    # the tiny stack is 4 x 4 x 50 nm: auto is 2D per section + linking
    # discs cover a small share of the image: the auto preset is "blobs"
    assert choose_preset(probs[:, 1]) == "blobs"
    expected = instances_from_probability_sync(
        probs[:, 1],
        voxel_size=(0.05, 0.004, 0.004),
        mode="auto",
        config=InstanceConfig.preset("blobs", min_size=20),
    )
    assert expected.mode == "2d"
    np.testing.assert_array_equal(instances, expected.labels)
    ids = np.unique(instances)
    assert ids[0] == 0 and ids[-1] == len(ids) - 1  # 1..n, unique over the stack


def test_measurements_one_row_per_object(predicted):
    with open(predicted["csv"], newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["label", "volume (µm^3)", "centroid_z (µm)"] and header[-1] == "n_slices"
    instances = tifffile.imread(predicted["instances"])
    ids = [int(v) for v in np.unique(instances) if v]
    assert [int(r[0]) for r in body] == ids
    voxel = 0.05 * 0.004 * 0.004
    first = body[0]
    assert float(first[1]) == pytest.approx(np.count_nonzero(instances == ids[0]) * voxel, rel=1e-4)


def test_evaluate_instances_matches_an_independent_matching(predicted, tiny_stack, capsys):
    from skimage.measure import label

    *_, truth = tiny_stack
    truth_path = predicted["labels"].with_name("truth.tif")
    tifffile.imwrite(truth_path, truth, photometric="minisblack")
    capsys.readouterr()
    assert main(["evaluate", str(predicted["instances"]), str(truth_path), "--instance-of", "2"]) == 0
    out = capsys.readouterr().out
    assert "restricted to the ground truth's foreground" in out
    assert "predicted objects: the prediction's ids" in out
    f1 = float(next(line for line in out.splitlines() if line.strip().startswith("F1")).split()[-1])
    # independent: per slice, every pair's IoU from boolean masks, a pair matches above 0.5 (unique there)
    pred = tifffile.imread(predicted["instances"])
    n_true = n_pred = tp = 0
    for z in range(truth.shape[0]):
        g = label(truth[z] == 2, connectivity=1)
        p = pred[z]
        gi, pi = [v for v in np.unique(g) if v], [v for v in np.unique(p) if v]
        n_true, n_pred = n_true + len(gi), n_pred + len(pi)
        for a in gi:
            for b in pi:
                inter = np.count_nonzero((g == a) & (p == b))
                union = np.count_nonzero((g == a) | (p == b))
                tp += inter / union > 0.5
    expected = 2 * tp / (n_true + n_pred) if n_true + n_pred else float("nan")
    assert f1 == pytest.approx(expected, abs=6e-5)


def test_evaluate_semantic_labels_as_connected_components(predicted, tiny_stack, capsys):
    *_, truth = tiny_stack
    truth_path = predicted["labels"].with_name("truth_cc.tif")
    tifffile.imwrite(truth_path, truth, photometric="minisblack")
    capsys.readouterr()
    assert main(["evaluate", str(truth_path), str(truth_path), "--instance-of", "2", "--instances-3d"]) == 0
    out = capsys.readouterr().out
    assert "connected components of label 2 (semantic labels)" in out and "3D objects" in out
    assert "F1                      1.0000" in out
    assert "pixel error" in out  # both semantic: the semantic scores follow


def test_batch_instances_flag_writes_next_to_each_labels_file(tiny_stack, base_model, tmp_path):
    img_path, *_ = tiny_stack
    out = tmp_path / "out"
    code = _predict(
        img_path,
        img_path.parent,
        "--model",
        base_model,
        "-o",
        out,
        "--instance-of",
        "2",
        "--instances",
        "--measurements",
        "--overwrite",
    )
    # the same file twice (itself and in its folder) is refused before any work
    assert code != 0
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.tif", "b.tif"):
        (folder / name).write_bytes(img_path.read_bytes())
    assert (
        _predict(
            folder,
            "--model",
            base_model,
            "-o",
            out,
            "--instances",
            "--instance-of",
            "2",
            "--measurements",
            "--instance-min-size",
            "20",
        )
        == 0
    )
    for stem in ("a", "b"):
        assert (out / f"{stem}_labels.tif").exists() and (out / f"{stem}_objects.csv").exists()
        assert tifffile.imread(out / f"{stem}_instances.tif").max() >= 1
    assert not (out / "a_probabilities.tif").exists()


def test_option_errors(tiny_stack, base_model, tmp_path, capsys):
    img_path, *_ = tiny_stack
    assert (
        _predict(img_path, "--model", base_model, "-o", tmp_path / "l.tif", "--instances", tmp_path / "i.tif")
        != 0
    )
    assert "need --instance-of" in capsys.readouterr().err
    assert _predict(img_path, "--model", base_model, "-o", tmp_path / "l.tif", "--instance-of", "2") != 0
    assert "--instance-of needs --instances" in capsys.readouterr().err
    code = _predict(
        img_path, "--model", base_model, "-o", tmp_path / "l.tif", "--instances", "--instance-of", "7"
    )
    assert code != 0 and "not a label value of the model" in capsys.readouterr().err
    assert not (tmp_path / "l.tif").exists()
    folder_code = _predict(
        img_path,
        img_path,
        "--model",
        base_model,
        "-o",
        tmp_path / "o",
        "--instance-of",
        "2",
        "--instances",
        tmp_path / "x.tif",
    )
    assert folder_code != 0
