"""The CUDA paths, run only where a CUDA GPU is present: device choice, autocast, prediction, a little training.

CUDA results are compared with the CPU's where that is meaningful. cuDNN convolutions run in TF32 by default and
autocast in bf16/fp16, so probabilities agree to a tolerance, and labels are compared only at pixels the CPU
decides by a clear margin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.config import TrainConfig
from napari_unet.device import (
    autocast,
    autocast_dtype,
    describe_device,
    empty_cache,
    free_memory_bytes,
    is_out_of_memory,
    select_device,
)
from napari_unet.model import UNet
from napari_unet.normalize import apply_normalization
from napari_unet.predict import predict_stack_sync, predict_whole
from napari_unet.train import train_sync

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda", 0)
RNG = np.random.default_rng(0)
STACK = (RNG.random((3, 64, 64)) * 200 + 20).astype(np.uint8)
META = {
    "normalization": {"mode": "percentile", "low": 20.0, "high": 220.0},
    "label_values": [0, 255],
}


def _balanced_model(padding: str = "valid") -> UNet:
    """A tiny random U-Net whose head bias is set so that both classes occur (a plain random one says 255 only)."""
    torch.manual_seed(0)
    model = UNet(depth=2, features=4, padding=padding).eval()
    p = predict_whole(model, apply_normalization(STACK[0], META["normalization"]))
    with torch.no_grad():
        model.head.bias[1] -= float(np.median(np.log(p[1]) - np.log(p[0])))
    return model


def _agree(cuda, cpu, *, atol: float, margin: float) -> None:
    """CUDA probabilities within ``atol`` of the CPU's; labels equal wherever the CPU's two classes differ by more
    than ``margin`` (and that is most pixels, so the comparison says something)."""
    assert np.abs(cuda.probabilities - cpu.probabilities).max() <= atol
    decided = np.abs(cpu.probabilities[:, 1] - cpu.probabilities[:, 0]) > margin
    assert decided.mean() > 0.5
    assert np.array_equal(cuda.labels[decided], cpu.labels[decided])


def _blobs(shape=(3, 64, 64)):
    """Bright disks (label 2) on a darker background (label 1): learnable, every pixel annotated."""
    rng = np.random.default_rng(0)
    labels = np.ones(shape, np.uint8)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    for z in range(shape[0]):
        for _ in range(5):
            cy, cx, r = rng.integers(8, shape[1] - 8), rng.integers(8, shape[2] - 8), rng.integers(5, 10)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
    image = (60 + 100 * (labels == 2) + rng.normal(0, 15, shape)).astype(np.float32)
    return image, labels


def test_cuda_is_selected_described_and_measured():
    assert select_device("cuda") == CUDA
    assert select_device("auto") == CUDA
    assert select_device(" CUDA:0 ") == CUDA
    assert describe_device("cuda").startswith("CUDA: ") and "GiB" in describe_device("cuda")
    assert free_memory_bytes("cuda") > 0


def test_autocast_runs_convolutions_in_the_reduced_dtype():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype("cuda") is expected
    conv = torch.nn.Conv2d(1, 2, 3).to(CUDA)
    x = torch.randn(1, 1, 8, 8, device=CUDA)
    with autocast(CUDA) as dtype:
        y = conv(x)
    assert dtype is expected and y.dtype is expected
    with autocast(CUDA, enabled=False) as dtype:
        y = conv(x)
    assert dtype is None and y.dtype is torch.float32


def test_a_real_out_of_memory_error_is_recognised():
    with pytest.raises(RuntimeError) as info:
        torch.empty(1 << 50, dtype=torch.uint8, device=CUDA)  # 1 PiB
    assert is_out_of_memory(info.value)
    empty_cache(CUDA)
    assert torch.zeros(4, device=CUDA).sum().item() == 0  # the device still works


@pytest.mark.parametrize("padding, tile", [("valid", 24), ("same", 32)])
def test_float32_on_cuda_matches_the_cpu(padding, tile):
    model = _balanced_model(padding)
    cpu = predict_stack_sync(STACK, model, META, tile=tile, device="cpu", want_probabilities=True)
    cuda = predict_stack_sync(
        STACK, model, META, tile=tile, device="cuda", amp=False, want_probabilities=True
    )
    assert cuda.device.startswith("CUDA") and cuda.tile_shape == cpu.tile_shape
    assert cuda.batch_size == 16  # auto batch on a GPU: as many of the 64 tiles as fit, at most 16
    _agree(cuda, cpu, atol=2e-2, margin=0.1)
    # tiles reproduce the whole slice on the GPU as well
    whole = predict_stack_sync(
        STACK, model, META, tile="auto", device="cuda", amp=False, want_probabilities=True
    )
    assert whole.tile_shape != cuda.tile_shape
    assert np.abs(whole.probabilities - cuda.probabilities).max() <= 2e-2
    assert next(model.parameters()).device.type == "cpu"  # the caller's model stays where it was


def test_autocast_prediction_on_cuda_matches_the_cpu():
    model = _balanced_model()
    cpu = predict_stack_sync(STACK, model, META, tile=24, device="cpu", want_probabilities=True)
    cuda = predict_stack_sync(STACK, model, META, tile=24, device="cuda", amp=True, want_probabilities=True)
    assert cuda.probabilities.dtype == np.float32 and cuda.labels.dtype == np.uint8
    _agree(cuda, cpu, atol=5e-2, margin=0.2)
    labels_only = predict_stack_sync(STACK, model, META, tile=24, device="cuda", amp=True)
    assert labels_only.probabilities is None
    decided = np.abs(cpu.probabilities[:, 1] - cpu.probabilities[:, 0]) > 0.2
    assert np.array_equal(labels_only.labels[decided], cpu.labels[decided])
    tta = predict_stack_sync(
        STACK[:1], model, META, tile=24, device="cuda", tta=True, want_probabilities=True
    )
    assert np.allclose(tta.probabilities.sum(axis=1), 1, atol=1e-2)


def test_two_training_iterations_on_cuda_then_predict_there():
    image, labels = _blobs()
    config = TrainConfig(device="cuda", iterations=2, depth=2, features=4, patch=32, batch_size=2)
    records = []
    result = train_sync(image, labels, config, callback=records.append)
    assert [r.iteration for r in records if r.phase == "train"] == [1, 2]
    assert len(result.history["loss"]) == 2 and np.isfinite(result.history["loss"]).all()
    assert len(result.history["val_mean_dice"]) >= 1  # validation ran on the GPU too
    assert 0.0 <= result.history["val_mean_dice"][-1] <= 1.0
    assert next(result.model.parameters()).device.type == "cpu" and not result.model.training
    assert result.meta["label_values"] == [1, 2]

    cpu = predict_stack_sync(image, result.model, result.meta, device="cpu", want_probabilities=True)
    cuda = predict_stack_sync(image, result.model, result.meta, device="cuda", want_probabilities=True)
    assert np.abs(cuda.probabilities - cpu.probabilities).max() <= 5e-2
    decided = np.abs(cpu.probabilities[:, 1] - cpu.probabilities[:, 0]) > 0.2
    assert np.array_equal(cuda.labels[decided], cpu.labels[decided])
