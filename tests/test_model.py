"""U-Net architecture and geometry (paper numbers, size rules, receptive field, initialisation)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from napari_unet.model import UNet


def test_paper_geometry_572_to_388():
    # The paper's network: 5 levels, 64 features; the geometry does not depend on features, so the forward pass
    # that proves it runs with 2 features (fast) while the arithmetic is checked on the real configuration.
    paper = UNet(depth=5, features=64)
    assert paper.output_size(572) == 388
    assert paper.shrink == 92 and paper.halo == 92 and paper.align == 16
    # ~31.0 M parameters (widely quoted for the 2-class paper network)
    assert 31.0e6 < sum(p.numel() for p in paper.parameters()) < 31.1e6
    small = UNet(depth=5, features=2)
    with torch.no_grad():
        y = small(torch.zeros(1, 1, 572, 572))
    assert tuple(y.shape) == (1, 2, 388, 388)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_forward_shapes_match_output_size(depth, padding):
    model = UNet(in_channels=2, n_classes=3, depth=depth, features=4, padding=padding)
    n = model.valid_input_size(40)
    with torch.no_grad():
        y = model(torch.randn(2, 2, n, model.valid_input_size(n + 1)))
    assert y.shape[:2] == (2, 3)
    assert y.shape[-2] == model.output_size(n) == n - 2 * model.shrink


def test_valid_sizes_rule_and_rounding():
    model = UNet(depth=4, features=4)  # valid sizes 8k + 28, k >= 8
    assert model.min_input_size == 92
    assert model.valid_input_size(570, "up") == 572
    assert model.valid_input_size(570, "down") == 564
    assert model.valid_input_size(569, "nearest") == 572
    assert model.valid_input_size(567, "nearest") == 564
    assert model.valid_input_size(10, "down") == 92  # never below the smallest valid size
    for n in range(92, 300):
        valid = (n - 28) % 8 == 0
        assert (model.valid_input_size(n, "down") == n) == valid, n


def test_check_input_size_message_names_the_numbers():
    model = UNet(depth=4, features=4)
    with pytest.raises(ValueError, match=r"570 .*depth 4.*8 \* k \+ 28.*564 or 572"):
        model.check_input_size(570)
    with pytest.raises(ValueError, match="570"):
        model.output_size(570)
    with pytest.raises(ValueError, match="smallest 92"):
        model.check_input_size((100, 50))
    same = UNet(depth=3, features=4, padding="same")
    same.check_input_size((64, 68))
    with pytest.raises(ValueError, match=r"multiple of 4.*64 or 68"):
        same.check_input_size(66)
    with pytest.raises(ValueError, match="66"), torch.no_grad():
        same(torch.zeros(1, 1, 64, 66))


def test_forward_rejects_wrong_channels():
    model = UNet(in_channels=1, depth=2, features=4)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*\(1, 3, 20, 20\)"):
        model(torch.zeros(1, 3, 20, 20))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_classes": 1}, "n_classes"),
        ({"depth": 0}, "depth"),
        ({"features": 0}, "features"),
        ({"padding": "reflect"}, "padding"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_kwargs_rebuild_identical_model():
    model = UNet(in_channels=2, n_classes=3, depth=3, features=4, padding="same", batch_norm=True)
    assert model.kwargs == {
        "in_channels": 2,
        "n_classes": 3,
        "depth": 3,
        "features": 4,
        "padding": "same",
        "batch_norm": True,
    }
    clone = UNet(**model.kwargs)
    clone.load_state_dict(model.state_dict())  # strict: same architecture
    model.eval()
    clone.eval()
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_batch_norm_layers_and_no_redundant_bias():
    model = UNet(depth=2, features=4, batch_norm=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m is not model.head]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    plain = UNet(depth=2, features=4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_he_initialisation():
    torch.manual_seed(0)
    model = UNet(depth=3, features=16)
    conv = model.encoders[1][0]  # 16 -> 32 channels, 3x3: fan-in 144
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 144), rel=0.1)
    up = model.ups[0]  # 64 -> 32, stride 2: each output pixel sees 64 inputs
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    assert all(not m.bias.detach().any() for m in model.modules() if isinstance(m, nn.Conv2d))


def _measured_field(model: UNet) -> tuple[int, int]:
    """(widest field, largest one-sided reach) of a few output pixels of every phase, by autograd.

    Max pooling routes gradients to one pixel of four, so it is replaced by average pooling, and weights are made
    positive on a positive input so no ReLU is off: the gradient is then non-zero exactly on the dependency set.
    """
    model.pool = nn.AvgPool2d(2)
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    n = model.valid_input_size(2 * model.halo + 12 * model.align)
    x = torch.rand(1, 1, n, n, requires_grad=True)
    y = model(x)
    offset = (n - y.shape[-1]) // 2
    width = reach = 0
    centre = y.shape[-1] // 2
    for o in range(centre - model.align, centre + model.align):
        (grad,) = torch.autograd.grad(y[0, 0, o, o], x, retain_graph=True)
        rows = torch.nonzero(grad[0, 0].abs().sum(1)).flatten()
        lo, hi = rows.min().item(), rows.max().item()
        width = max(width, hi - lo + 1)
        reach = max(reach, o + offset - lo, hi - o - offset)
    return width, reach


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_receptive_field_and_halo_match_autograd(depth, padding):
    torch.manual_seed(0)
    model = UNet(depth=depth, features=2, padding=padding)
    width, reach = _measured_field(model)
    assert model.receptive_field == width
    assert model.reach == reach
    if padding == "same":
        assert model.halo >= reach and model.halo % model.align == 0 and model.halo - reach < model.align
    else:
        assert model.halo == model.shrink


def test_receptive_field_numbers():
    assert UNet(depth=4, features=1).receptive_field == 100
    assert UNet(depth=4, features=1).reach == 51
    assert UNet(depth=4, features=1, padding="same").halo == 56
