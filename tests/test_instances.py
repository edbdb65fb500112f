"""Instances from probabilities: seeded watershed, linking across sections, 3D, ids, measurements."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.instances import (
    IdCounter,
    InstanceConfig,
    InstanceProgress,
    class_probability,
    instances_from_probability,
    instances_from_probability_sync,
    link_to_previous,
    measure_objects,
    resolve_mode,
    watershed_objects,
    write_measurements_csv,
)


def _discs(shape=(64, 64), centres=((20, 20), (20, 44), (46, 32)), radius=9) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return out


def _cells(shape=(64, 64), step=16, gap=None) -> np.ndarray:
    """Probability of 'cell' on a grid of square cells with 2 px membranes; ``gap`` opens one membrane."""
    p = np.full(shape, 0.95, np.float32)
    for k in range(0, shape[0], step):
        p[k : k + 2, :] = 0.05
        p[:, k : k + 2] = 0.05
    if gap is not None:
        p[gap] = 0.45  # a weak membrane: below the mask threshold nowhere, but a trough for the watershed
    return p


def test_touching_blobs_are_split():
    # two overlapping discs: one connected component, two objects
    truth = _discs(centres=((32, 22), (32, 42)), radius=11)
    p = ndimage.gaussian_filter((truth > 0).astype(np.float32), 1)
    assert ndimage.label(p > 0.5)[1] == 1
    labels = watershed_objects(p, InstanceConfig.preset("blobs", min_size=20))
    assert labels.dtype == np.int32 and labels.max() == 2
    left, right = labels[32, 15], labels[32, 49]
    assert left != right and left > 0 and right > 0


def test_a_gap_in_a_membrane_does_not_merge_cells():
    p = _cells()
    p[16:18, 24:28] = 0.6  # a 4 px gap in one horizontal membrane: connected components merge two cells
    n_cc = ndimage.label(p > 0.5)[1]
    labels = watershed_objects(p, InstanceConfig(sigma=1.0, h=1.0, min_size=10))
    assert labels.max() == n_cc + 1 == 16
    assert labels[8, 24] != labels[24, 24]


def test_min_size_holes_and_border():
    p = np.zeros((64, 64), np.float32)
    p[10:30, 10:30] = 1.0
    p[18:21, 18:21] = 0.0  # a hole
    p[50:53, 50:53] = 1.0  # a speck of 9 px
    p[40:60, 0:10] = 1.0  # touches the left edge
    labels = watershed_objects(p, InstanceConfig(sigma=0, h=20, min_size=20, fill_holes=True))
    assert labels[19, 19] == labels[12, 12] > 0
    assert labels[51, 51] == 0
    assert labels[50, 2] > 0 and labels.max() == 2
    cleared = watershed_objects(p, InstanceConfig(sigma=0, h=20, min_size=20, clear_border=True))
    assert cleared[50, 2] == 0 and cleared.max() == 1
    kept = watershed_objects(p, InstanceConfig(sigma=0, h=20, min_size=0, fill_holes=False))
    assert kept[19, 19] == 0 and kept[51, 51] > 0


def test_empty_probability_gives_no_objects():
    assert watershed_objects(np.zeros((16, 16))).max() == 0
    result = instances_from_probability_sync(np.zeros((3, 16, 16), np.float32), mode="2d")
    assert result.n_objects == 0 and result.labels.dtype == np.uint32


def test_mode_from_voxel_size():
    assert resolve_mode("auto", (50, 4, 4), 3) == "2d"
    assert resolve_mode("auto", (5, 5, 5), 3) == "3d"
    assert resolve_mode("auto", (8, 5, 5), 3) == "3d"
    assert resolve_mode("auto", None, 3) == "2d"  # unknown voxel size: the safe choice
    assert resolve_mode("auto", None, 2) == "2d"
    assert resolve_mode("no", (5, 5, 5), 3) == "2d" and resolve_mode("yes", (50, 4, 4), 3) == "3d"
    with pytest.raises(ValueError, match="auto, 2d or 3d"):
        resolve_mode("maybe", None, 3)
    with pytest.raises(ValueError, match="3D instances"):
        resolve_mode("3d", None, 2)


def test_linking_follows_objects_across_sections_and_ids_are_unique():
    # three sections: discs 1 and 2 continue, disc 3 only on the middle section
    a = _discs(centres=((20, 20), (20, 44)))
    b = _discs(centres=((21, 21), (20, 45), (46, 32)))
    c = _discs(centres=((22, 22), (46, 10)))
    p = np.stack([ndimage.gaussian_filter((s > 0).astype(np.float32), 1) for s in (a, b, c)])
    gen = instances_from_probability(
        p, voxel_size=(50, 4, 4), config=InstanceConfig.preset("blobs", min_size=20)
    )
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert [r.done for r in records] == [1, 2, 3] and isinstance(records[0], InstanceProgress)
    assert result.mode == "2d" and result.labels.dtype == np.uint32
    lab = result.labels
    assert lab[0, 20, 20] == lab[1, 21, 21] == lab[2, 22, 22]
    assert lab[0, 20, 44] == lab[1, 20, 45]
    assert lab[1, 46, 32] not in (lab[0, 20, 20], lab[0, 20, 44])
    assert lab[2, 46, 10] not in set(np.unique(lab[:2]).tolist())
    assert result.n_objects == 4 == len(np.unique(lab)) - 1
    unlinked = instances_from_probability_sync(
        p, mode="2d", link=False, config=InstanceConfig.preset("blobs", min_size=20)
    )
    assert unlinked.n_objects == 7 == len(np.unique(unlinked.labels)) - 1


def test_link_is_one_to_one_and_respects_min_iou():
    prev = np.zeros((1, 8), np.uint32)
    prev[0, :4] = 7
    cur = np.zeros((1, 8), np.int32)
    cur[0, :2], cur[0, 2:4], cur[0, 6:] = 1, 2, 3
    counter = IdCounter(7)
    out = link_to_previous(cur, prev, counter, min_iou=0.5)
    # both halves overlap object 7 with IoU 0.5: only one continues it
    assert sorted(np.unique(out[0, :4]).tolist()) == [7, 8]
    assert out[0, 7] == 9 and counter.last == 9
    none = link_to_previous(cur, prev, IdCounter(7), min_iou=0.9)
    assert 7 not in none


def test_3d_mode_uses_the_voxel_size():
    # a ball cut into two by nothing but its anisotropic shape: one 3D object with near-isotropic voxels
    zz, yy, xx = np.mgrid[:3, :32, :32]
    ball = ((zz - 1) ** 2 * 4 + (yy - 16) ** 2 + (xx - 16) ** 2 <= 64).astype(np.float32)
    result = instances_from_probability_sync(
        ball, voxel_size=(2, 1, 1), mode="auto", config=InstanceConfig.preset("blobs", min_size=5)
    )
    assert result.mode == "3d" and result.n_objects == 1
    assert (result.labels[1, 16, 16] == result.labels[0, 16, 16]) and result.labels[1, 16, 16] > 0


def test_out_array_receives_ids():
    p = np.stack([_cells()] * 2)
    out = np.zeros(p.shape, np.uint32)
    result = instances_from_probability_sync(
        p, mode="2d", out=out, config=InstanceConfig(sigma=1, h=1, min_size=10)
    )
    assert result.labels is out and out.max() == 16  # linked: the same 16 cells on both sections
    with pytest.raises(ValueError, match="out has shape"):
        instances_from_probability_sync(p, mode="2d", out=np.zeros((1, 64, 64), np.uint32))


def test_class_probability_picks_the_channel():
    probs = np.random.default_rng(0).random((3, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(class_probability(probs, [0, 255], 255), probs[:, 1])
    np.testing.assert_array_equal(class_probability(probs[0], [1, 2], 1), probs[0, 0])
    with pytest.raises(ValueError, match="not a class"):
        class_probability(probs, [0, 255], 2)


def test_measurements_in_physical_units(tmp_path):
    lab = np.zeros((3, 16, 16), np.uint32)
    lab[0:2, 2:6, 2:6] = 5  # 2 slices x 16 px
    lab[2, 10:12, 10:14] = 9  # 1 slice x 8 px
    prob = np.full(lab.shape, 0.5, np.float32)
    prob[lab == 9] = 0.9
    table = measure_objects(lab, prob, voxel_size=(50.0, 4.0, 4.0))
    assert table["label"].tolist() == [5, 9]
    np.testing.assert_allclose(table["volume"], [32 * 50 * 16, 8 * 50 * 16])
    np.testing.assert_allclose(table["centroid_z"], [25.0, 100.0])
    np.testing.assert_allclose(table["centroid_y"], [3.5 * 4, 10.5 * 4])
    np.testing.assert_allclose(table["centroid_x"], [3.5 * 4, 11.5 * 4])
    np.testing.assert_allclose(table["mean_probability"], [0.5, 0.9], rtol=1e-6)
    assert table["n_slices"].tolist() == [2, 1]
    flat = measure_objects(lab[0])
    assert "area" in flat and "centroid_z" not in flat and np.isnan(flat["mean_probability"]).all()
    path = tmp_path / "objects.csv"
    write_measurements_csv(path, table, unit="nm")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("label,volume (nm^3),centroid_z (nm)") and len(lines) == 3
    assert lines[1].split(",")[0] == "5" and lines[1].split(",")[-1] == "2"


def test_config_checks_and_presets():
    assert InstanceConfig.preset("blobs").min_size == 1000
    assert InstanceConfig.preset("cells", h=3).h == 3
    with pytest.raises(ValueError, match="unknown instance preset"):
        InstanceConfig.preset("nuclei")
    with pytest.raises(ValueError, match="landscape"):
        InstanceConfig(landscape="x")
    with pytest.raises(ValueError, match="threshold"):
        InstanceConfig(threshold=2)
