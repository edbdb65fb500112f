"""The widgets' layer chores that need no viewer: which slices a napari paint event touched."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

from napari_unet._widgets._layers import painted_slices


def _painted(layer: Labels, paint) -> list[set[int] | None]:
    seen = []
    layer.events.paint.connect(lambda event: seen.append(painted_slices(event.value, layer.ndim)))
    paint()
    return seen


def test_a_brush_stroke_and_a_fill_name_the_slice_they_touched():
    layer = Labels(np.zeros((4, 32, 32), np.uint8))
    layer.brush_size = 3
    assert _painted(layer, lambda: layer.paint((2, 10, 10), 1)) == [{2}]
    assert layer.data[2, 10, 10] == 1 and not layer.data[[0, 1, 3]].any()
    layer.n_edit_dimensions = 2
    assert _painted(layer, lambda: layer.fill((3, 20, 20), 2)) == [{3}]


def test_a_2d_layer_has_one_slice_and_unknown_atoms_say_so():
    flat = Labels(np.zeros((32, 32), np.uint8))
    assert _painted(flat, lambda: flat.paint((5, 5), 1)) == [{0}]
    # napari's fancy-index atoms: (indices per axis, old values, new values)
    atom = ((np.array([1, 1, 4]), np.array([0, 1, 2]), np.array([3, 3, 3])), np.zeros(3), 1)
    assert painted_slices([atom], 3) == {1, 4}
    assert painted_slices([object()], 3) is None  # cannot tell: the caller re-reads every slice
