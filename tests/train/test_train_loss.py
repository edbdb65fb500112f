"""Training objective: class weights and the segmentation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.train import IGNORE, class_weights, segmentation_loss


def test_class_weights_inverse_frequency_clipped():
    w = class_weights([900, 100], power=1.0, max_ratio=100)
    assert w[1] / w[0] == pytest.approx(9.0)
    assert (w * np.array([0.9, 0.1])).sum() == pytest.approx(1.0)  # average weight per pixel is 1
    w = class_weights([9990, 10], power=1.0, max_ratio=10)
    assert w[1] / w[0] == pytest.approx(10.0)
    assert class_weights([50, 0, 50])[1] == 0
    np.testing.assert_allclose(class_weights([3, 1], power=0.0), [1, 1])


def test_loss_ignores_unannotated_pixels_and_is_small_when_right():
    torch.manual_seed(0)
    target = torch.tensor([[[0, 1, IGNORE, IGNORE]]])
    logits = torch.randn(1, 2, 1, 4, requires_grad=True)
    loss = segmentation_loss(logits, target)
    loss.backward()
    assert logits.grad[..., 2:].abs().max() == 0  # ignored pixels get no gradient
    changed = logits.detach().clone()
    changed[..., 2:] = 100.0
    assert segmentation_loss(changed, target) == pytest.approx(float(loss))
    right = torch.tensor([[[[20.0, -20.0, 0, 0]], [[-20.0, 20.0, 0, 0]]]])
    assert segmentation_loss(right, target) < 1e-3
    empty = segmentation_loss(logits, torch.full((1, 1, 4), IGNORE))
    assert float(empty) == 0.0 and empty.requires_grad


def test_entropy_term_acts_only_on_unannotated_pixels():
    torch.manual_seed(0)
    target = torch.tensor([[[0, 1, IGNORE, IGNORE]]])
    logits = torch.randn(1, 2, 1, 4, requires_grad=True)
    base = segmentation_loss(logits, target)
    loss = segmentation_loss(logits, target, entropy_weight=0.5)
    loss.backward()
    assert logits.grad[..., 2:].abs().max() > 0  # the unpainted pixels now get a gradient
    assert float(loss) > float(base)
    # confident predictions on the unpainted pixels cost (almost) nothing, whichever class they pick
    confident = logits.detach().clone()
    confident[:, 0, :, 2:], confident[:, 1, :, 2:] = 30.0, -30.0
    assert float(segmentation_loss(confident, target, entropy_weight=0.5)) == pytest.approx(
        float(segmentation_loss(confident, target)), abs=1e-6
    )
    # unsure ones (50/50) cost entropy_weight * ln 2
    unsure = confident.clone()
    unsure[..., 2:] = 0.0
    extra = segmentation_loss(unsure, target, entropy_weight=0.5) - segmentation_loss(unsure, target)
    assert float(extra) == pytest.approx(0.5 * np.log(2), rel=1e-5)
    full = torch.tensor([[[0, 1, 1, 0]]])  # nothing unannotated: no term, no error
    assert float(segmentation_loss(logits, full, entropy_weight=0.5)) == pytest.approx(
        float(segmentation_loss(logits, full))
    )
