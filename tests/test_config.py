"""Training configuration: checks, presets, mode-dependent defaults, the auto-or-integer parser."""

from __future__ import annotations

import dataclasses

import pytest

from napari_unet.config import TrainConfig, parse_auto_int


def test_bad_config_raises():
    with pytest.raises(ValueError, match="padding"):
        TrainConfig(padding="full").check()
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.0).check()
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("turbo")
    gpu = TrainConfig.preset("accurate-gpu", minutes=5)
    assert gpu.padding == "valid" and gpu.minutes == 5 and TrainConfig.preset("fast-cpu") == TrainConfig()


def test_mode_dependent_defaults_resolve_and_explicit_values_stay():
    sparse, dense = TrainConfig().resolved(), TrainConfig(dense=True).resolved()
    assert (sparse.patch, sparse.batch_size, sparse.entropy_weight, sparse.class_weight_power) == (
        96,
        8,
        2.0,
        0.5,
    )
    assert sparse.elastic and sparse.intensity
    assert (dense.patch, dense.batch_size, dense.entropy_weight, dense.class_weight_power) == (
        256,
        4,
        0.0,
        0.0,
    )
    assert not dense.elastic and not dense.intensity
    mine = TrainConfig(patch=96, batch_size=2, entropy_weight=0.0, elastic=False).resolved()
    assert (mine.patch, mine.batch_size, mine.entropy_weight, mine.elastic) == (96, 2, 0.0, False)
    assert mine.resolved() == mine  # idempotent
    with pytest.raises(ValueError, match="patch"):
        TrainConfig(patch=0).check()


def test_config_is_frozen_and_presets_take_overrides():
    config = TrainConfig.preset("fast-cpu", minutes=2.0, seed=3)
    assert (config.minutes, config.seed) == (2.0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.minutes = 5.0  # built once, never patched
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.preset("fast-cpu", minuets=2)
    paper = TrainConfig.preset("paper", lr=1e-3)
    assert (paper.depth, paper.features, paper.padding, paper.patch, paper.lr) == (5, 64, "valid", 572, 1e-3)


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", None), (" AUTO ", None), (None, None), (3, 3), ("12", 12), (4.0, 4)]
)
def test_parse_auto_int_accepts_auto_and_whole_numbers(value, expected):
    assert parse_auto_int(value, "tile") == expected


@pytest.mark.parametrize("value", [0, -2, 1.5, "1.5", "big", True, [3]])
def test_parse_auto_int_refuses_the_rest_with_the_name(value):
    with pytest.raises(ValueError, match="tile must be 'auto' or a whole number of at least 1"):
        parse_auto_int(value, "tile")


def test_parse_auto_int_minimum():
    assert parse_auto_int("16", "tile", minimum=16) == 16
    with pytest.raises(ValueError, match="at least 16"):
        parse_auto_int(15, "tile", minimum=16)
