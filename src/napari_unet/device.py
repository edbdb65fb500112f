"""Choosing the torch device, its autocast dtype and how much memory a prediction may use.

``select_device`` takes ``cuda``/``mps`` overrides so that tests on a CPU-only machine exercise every branch
(auto picks CUDA, then Apple MPS, then CPU; an explicit request for something absent fails with the reason).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

__all__ = [
    "DeviceUnavailableError",
    "select_device",
    "describe_device",
    "autocast_dtype",
    "autocast",
    "channels_last",
    "free_memory_bytes",
    "empty_cache",
    "is_out_of_memory",
]

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")

# CPU inference never uses more than this, however much RAM is free: beyond it tiles are already large enough that
# larger ones do not run faster, and a desktop stays usable while napari predicts.
CPU_MEMORY_CAP = 4 * 1024**3


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine; the message says why and what to use instead."""


def _cuda_count(cuda: bool | int | None) -> int:
    if cuda is None:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    # bool is an int: True means one device, False none; an int gives the number of devices.
    return max(0, int(cuda))


def _mps_available(mps: bool | None) -> bool:
    if mps is not None:
        return bool(mps)
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(
    requested: str | torch.device = "auto", *, cuda: bool | int | None = None, mps: bool | None = None
) -> torch.device:
    """Resolve a device request.

    Parameters
    ----------
    requested : str or torch.device
        ``"auto"`` (CUDA, else Apple MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` or ``"mps"``.
        Case and surrounding spaces are ignored.
    cuda : bool or int, optional
        Override CUDA availability (``True`` = one device, an int = that many devices, ``False`` = none);
        ``None`` asks torch.
    mps : bool, optional
        Override Apple MPS availability; ``None`` asks torch.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For a string that names no device.
    DeviceUnavailableError
        When the requested device is not available (the message names what is).
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    text = str(requested).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None:
        raise ValueError(f"unknown device {requested!r}; use 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
    kind, index = match.group(1), match.group(2)
    n_cuda = _cuda_count(cuda)
    has_mps = _mps_available(mps)
    if kind == "auto":
        if index is not None:
            raise ValueError(f"unknown device {requested!r}; 'auto' takes no index")
        if n_cuda:
            return torch.device("cuda", 0)
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not has_mps:
            raise DeviceUnavailableError(
                f"Apple MPS was requested but is not available here (it needs macOS 12.3+ on Apple silicon and a "
                f"torch build with MPS); available: {_available(n_cuda, has_mps)}"
            )
        return torch.device("mps")
    # cuda
    if n_cuda == 0:
        built = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise DeviceUnavailableError(
            f"CUDA was requested but no CUDA GPU is available (torch {torch.__version__} is {built}); "
            f"available: {_available(n_cuda, has_mps)}"
        )
    i = 0 if index is None else int(index)
    if i >= n_cuda:
        raise DeviceUnavailableError(
            f"cuda:{i} was requested but only {n_cuda} CUDA device(s) exist (cuda:0 to cuda:{n_cuda - 1})"
        )
    return torch.device("cuda", i)


def _available(n_cuda: int, has_mps: bool) -> str:
    names = [f"cuda:{i}" for i in range(n_cuda)] + (["mps"] if has_mps else []) + ["cpu"]
    return ", ".join(names)


def describe_device(device: str | torch.device) -> str:
    """One line for the user: ``"CUDA: <name> (<memory> GiB)"``, ``"Apple MPS"``, ``"CPU — slow, consider a GPU"``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else 0
        try:
            props = torch.cuda.get_device_properties(index)
        except (RuntimeError, AssertionError, AttributeError):
            return f"CUDA:{index}"
        prefix = "CUDA" if index == 0 else f"CUDA:{index}"
        return f"{prefix}: {props.name} ({props.total_memory / 1024**3:.0f} GiB)"
    if device.type == "mps":
        return "Apple MPS"
    if device.type == "cpu":
        return "CPU — slow, consider a GPU"
    return str(device)


def autocast_dtype(device: str | torch.device, *, bf16: bool | None = None) -> torch.dtype | None:
    """Mixed-precision dtype for inference on ``device``, or None to run in float32.

    bfloat16 where the GPU supports it (its float32-sized exponent cannot overflow on unnormalised activations),
    else float16. None on CPU and MPS: CPU autocast is slower than float32 for convolutions on most machines, and
    MPS autocast support is uneven across torch versions.

    Parameters
    ----------
    device : str or torch.device
    bf16 : bool, optional
        Override the bfloat16 capability check (for tests); None asks torch.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if bf16 is None:
        try:
            bf16 = bool(torch.cuda.is_bf16_supported())
        except (RuntimeError, AssertionError):
            bf16 = False
    return torch.bfloat16 if bf16 else torch.float16


@contextlib.contextmanager
def autocast(device: str | torch.device, enabled: bool = True) -> Iterator[torch.dtype | None]:
    """``torch.autocast`` with :func:`autocast_dtype`, or a no-op where that is None; yields the dtype used."""
    device = torch.device(device)
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        yield None
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield dtype


def channels_last(device: str | torch.device) -> bool:
    """Whether tensors on ``device`` should use the NHWC layout (``torch.channels_last``) rather than NCHW.

    True on CPU and CUDA, False on MPS, whose support for it is uneven. Prediction lays out both the network
    (:func:`napari_unet.predict.inference_copy`) and every input batch this way.
    """
    # NHWC lets oneDNN (CPU) and cuDNN tensor cores (CUDA, with autocast) skip layout reorders between layers:
    # about 1.3-1.6x faster on CPU for this network.
    return torch.device(device).type in ("cpu", "cuda")


def free_memory_bytes(device: str | torch.device) -> int:
    """Memory a prediction on ``device`` may use now, in bytes (an estimate).

    CUDA: free device memory plus what torch's caching allocator holds but does not use. MPS: the recommended
    working set minus what the driver has allocated. CPU: available RAM (psutil), capped at 4 GiB.
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(0, cached))
    if device.type == "mps":
        try:
            return int(max(0, torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()))
        except (AttributeError, RuntimeError):
            pass
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency; a conservative guess keeps tiles modest
        available = 2 * 1024**3
    return min(available, CPU_MEMORY_CAP)


def empty_cache(device: str | torch.device) -> None:
    """Return cached, unused blocks of the device allocator (after an out-of-memory error)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        with contextlib.suppress(AttributeError, RuntimeError):
            torch.mps.empty_cache()


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (``torch.OutOfMemoryError`` or the MPS RuntimeError)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    text = str(err).lower()
    return "out of memory" in text or "can't allocate memory" in text
