"""Device selection, description, autocast dtype and memory helpers (every branch, on a CPU machine)."""

from __future__ import annotations

import pytest
import torch

from napari_unet.device import (
    CPU_MEMORY_CAP,
    DeviceUnavailableError,
    autocast,
    autocast_dtype,
    channels_last,
    describe_device,
    free_memory_bytes,
    is_out_of_memory,
    select_device,
)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [
        (True, True, torch.device("cuda", 0)),
        (2, False, torch.device("cuda", 0)),
        (False, True, torch.device("mps")),
        (False, False, torch.device("cpu")),
    ],
)
def test_auto_prefers_cuda_then_mps_then_cpu(cuda, mps, expected):
    assert select_device("auto", cuda=cuda, mps=mps) == expected


def test_explicit_requests():
    assert select_device("cpu", cuda=True, mps=True) == torch.device("cpu")
    assert select_device("cuda", cuda=True) == torch.device("cuda", 0)
    assert select_device(" CUDA:1 ", cuda=2) == torch.device("cuda", 1)
    assert select_device("mps", mps=True) == torch.device("mps")
    assert select_device(torch.device("cpu")) == torch.device("cpu")


def test_unavailable_devices_raise_clear_errors():
    with pytest.raises(DeviceUnavailableError, match=r"CUDA was requested.*available: cpu"):
        select_device("cuda", cuda=False, mps=False)
    with pytest.raises(DeviceUnavailableError, match=r"cuda:1 was requested but only 1 CUDA device"):
        select_device("cuda:1", cuda=True)
    with pytest.raises(DeviceUnavailableError, match=r"MPS.*available: cuda:0, cpu"):
        select_device("mps", cuda=1, mps=False)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "auto:0", "", "tpu"])
def test_unknown_device_strings(bad):
    with pytest.raises(ValueError, match="unknown device"):
        select_device(bad)


def test_real_machine_auto_is_available():
    device = select_device("auto")
    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available():
        assert device == torch.device("cuda", 0)
    elif mps is not None and mps.is_available():
        assert device == torch.device("mps")
    else:
        assert device == torch.device("cpu")
    x = torch.arange(3.0, device=device) * 2  # whatever auto picks must compute here
    assert x.device.type == device.type and x.cpu().tolist() == [0.0, 2.0, 4.0]


def test_describe_device():
    assert describe_device("cpu") == "CPU — slow, consider a GPU"
    assert describe_device("mps") == "Apple MPS"
    if torch.cuda.is_available():
        assert describe_device("cuda").startswith("CUDA: ")


def test_autocast_dtype():
    assert autocast_dtype("cpu") is None
    assert autocast_dtype("mps") is None
    assert autocast_dtype("cuda", bf16=True) is torch.bfloat16
    assert autocast_dtype("cuda:1", bf16=False) is torch.float16


def test_autocast_is_a_no_op_on_cpu():
    with autocast("cpu") as dtype:
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert dtype is None and y.dtype == torch.float32


def test_channels_last_on_cpu_and_cuda_only():
    assert channels_last("cpu") and channels_last("cuda:1") and channels_last(torch.device("cuda"))
    assert not channels_last("mps")


def test_free_memory_on_cpu_is_positive_and_capped():
    free = free_memory_bytes("cpu")
    assert 0 < free <= CPU_MEMORY_CAP


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_out_of_memory(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 9 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
