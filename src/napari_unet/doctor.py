"""``napari-unet doctor``: what this machine offers napari-unet, and the one command that fixes a CPU-only torch.

:func:`gather_facts` collects the facts (torch version and build, devices with name and free memory, threads,
optional extras, the data / cache folders, GPUs the system sees); :func:`report_lines` and :func:`torch_fix` are
pure functions of those facts, so every branch is tested with injected facts (no GPU needed). Without
``use_torch`` nothing imports torch: the build comes from the installed distribution's version (``2.13.0+cpu``,
``+cu128``, ``+rocm6.4``) and NVIDIA GPUs from ``nvidia-smi`` -- what the widgets' device tooltip shows without
slowing the dock down. No Qt here.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["DeviceFact", "Facts", "device_tooltip", "gather_facts", "report_lines", "torch_fix"]

# torch builds published for the pinned version (download.pytorch.org/whl/<tag>), newest last
CUDA_BUILDS = ("12.6", "12.8", "13.0")
ROCM_BUILD = "6.4"
TORCH_PIN = "2.13.0"
EXTRAS = {
    "napari (widgets)": "napari",
    "PyQt6 / PyQt5 / PySide6 (Qt)": ("PyQt6", "PyQt5", "PySide6", "PySide2"),
    "bioimageio.spec (export)": "bioimageio.spec",
    "bioimageio.core (bioimageio test)": "bioimageio.core",
    "zarr": "zarr",
    "dask.distributed (cluster)": "distributed",
    "monai (benchmarks)": "monai",
}


@dataclasses.dataclass(frozen=True)
class DeviceFact:
    """One compute device: ``kind`` "cuda" / "mps" / "cpu", a display name, memory in bytes (None: unknown)."""

    name: str
    kind: str
    index: int = 0
    free: int | None = None
    total: int | None = None
    usable: bool = True  # torch can run on it (False: the system sees it, this torch build cannot use it)


@dataclasses.dataclass(frozen=True)
class Facts:
    """What :func:`gather_facts` found; every field can be given by hand in tests."""

    torch_version: str | None  # None: torch is not installed
    build: str  # "CPU", "CUDA 12.8", "ROCm 6.4", "MPS"
    devices: tuple[DeviceFact, ...]
    threads: int
    cpu_count: int
    extras: dict[str, str | None]
    folders: dict[str, str]
    system: str = platform.system()
    machine: str = platform.machine()
    driver_cuda: str | None = None  # the CUDA version the NVIDIA driver supports (nvidia-smi)
    amd_gpu: bool = False
    python: str = platform.python_version()


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return f"{name} {metadata.version(name)}" if len(names) > 1 else metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _build_from_version(version: str | None, system: str) -> str:
    local = (version or "").partition("+")[2]
    if local.startswith("cu") and local[2:].isdigit():
        digits = local[2:]
        return f"CUDA {digits[:-1]}.{digits[-1]}"
    if local.startswith("rocm"):
        return f"ROCm {local[4:]}"
    if not local and system == "Darwin":
        return "MPS"
    if not local and system == "Linux":
        return "CUDA (default PyPI wheel)"
    return "CPU"


def _nvidia() -> tuple[list[DeviceFact], str | None]:
    """GPUs and the driver's CUDA version from nvidia-smi (empty without an NVIDIA driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], None
    try:
        query = subprocess.run(
            [exe, "--query-gpu=name,memory.free,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        header = subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return [], None
    devices = []
    for index, line in enumerate(row for row in query.splitlines() if row.strip()):
        name, free, total = (part.strip() for part in line.rsplit(",", 2))
        mib = 1024**2
        devices.append(
            DeviceFact(name, "cuda", index, int(float(free)) * mib, int(float(total)) * mib, False)
        )
    driver = None
    if "CUDA Version:" in header:
        driver = header.split("CUDA Version:")[1].split()[0]
    return devices, driver


def _amd_gpu() -> bool:
    return any(
        p.read_text().strip() == "0x1002"
        for p in Path("/sys/class/drm").glob("card*/device/vendor")
        if p.is_file()
    )


def _torch_devices() -> tuple[list[DeviceFact], str, int]:
    import torch

    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(
                DeviceFact(torch.cuda.get_device_name(index), "cuda", index, int(free), int(total))
            )
    backend = getattr(torch.backends, "mps", None)
    if backend is not None and backend.is_available():
        devices.append(DeviceFact("Apple MPS", "mps"))
    if torch.version.hip:
        build = f"ROCm {torch.version.hip}"
    elif torch.version.cuda:
        build = f"CUDA {torch.version.cuda}"
    elif backend is not None and backend.is_built():
        build = "MPS"
    else:
        build = "CPU"
    return devices, build, torch.get_num_threads()


def _folders() -> dict[str, str]:
    from ._recent import DATA_DIR_ENV, models_dir

    folders = {"models (kept by the widgets)": str(models_dir())}
    if os.environ.get(DATA_DIR_ENV):
        folders[f"${DATA_DIR_ENV}"] = os.environ[DATA_DIR_ENV]
    folders["temporary files (training runs, big outputs)"] = tempfile.gettempdir()
    for env in ("NAPARI_UNET_LAZY_BYTES", "TORCH_HOME", "XDG_CACHE_HOME"):
        if os.environ.get(env):
            folders[f"${env}"] = os.environ[env]
    return folders


def gather_facts(*, use_torch: bool = True) -> Facts:
    """The facts of this machine; ``use_torch=False`` reads them without importing torch (no free memory then)."""
    torch_version = _dist_version("torch")
    system = platform.system()
    nvidia, driver = _nvidia()
    cpu_count = os.cpu_count() or 1
    threads = cpu_count
    if use_torch and torch_version is not None:
        usable, build, threads = _torch_devices()
        seen = {d.name for d in usable}
        devices = usable + [d for d in nvidia if d.name not in seen]
    else:
        build = _build_from_version(torch_version, system)
        cuda_build = build.startswith("CUDA")
        devices = [dataclasses.replace(d, usable=cuda_build) for d in nvidia]
    devices.append(DeviceFact(f"CPU ({platform.processor() or platform.machine()})", "cpu"))
    extras = {
        label: _dist_version(*(names if isinstance(names, tuple) else (names,)))
        for label, names in EXTRAS.items()
    }
    return Facts(
        torch_version,
        build,
        tuple(devices),
        threads,
        cpu_count,
        extras,
        _folders(),
        system,
        platform.machine(),
        driver,
        _amd_gpu() if system == "Linux" else False,
    )


def torch_fix(facts: Facts) -> str | None:
    """The pip command that installs the torch build this machine's GPU needs, or None when nothing is missing."""
    if any(d.usable and d.kind in ("cuda", "mps") for d in facts.devices):
        return None
    nvidia = [d for d in facts.devices if d.kind == "cuda" and not d.usable]
    pin = f"torch=={TORCH_PIN}"
    if nvidia:
        builds = [
            b for b in CUDA_BUILDS if facts.driver_cuda is None or _tuple(b) <= _tuple(facts.driver_cuda)
        ]
        if not builds:
            return (
                f"the NVIDIA driver supports CUDA {facts.driver_cuda} only; update the driver to one for CUDA "
                f"{CUDA_BUILDS[0]} or newer, then: pip install --force-reinstall {pin} --index-url "
                f"https://download.pytorch.org/whl/cu{CUDA_BUILDS[0].replace('.', '')}"
            )
        tag = "cu" + builds[-1].replace(".", "")
        return f"pip install --force-reinstall {pin} --index-url https://download.pytorch.org/whl/{tag}"
    if facts.amd_gpu and not facts.build.startswith("ROCm"):
        tag = "rocm" + ROCM_BUILD
        return f"pip install --force-reinstall {pin} --index-url https://download.pytorch.org/whl/{tag}"
    if facts.system == "Darwin" and facts.machine == "arm64" and facts.build == "CPU":
        return f"pip install --force-reinstall {pin}  # the PyPI wheel for macOS arm64 includes MPS"
    return None


def _tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024**3:.1f} GiB"


def report_lines(facts: Facts) -> list[str]:
    """What ``napari-unet doctor`` prints, one fact a line."""
    from . import __version__

    torch_line = (
        f"torch {facts.torch_version} ({facts.build} build)"
        if facts.torch_version
        else "torch: not installed"
    )
    lines = [
        f"napari-unet {__version__}, Python {facts.python} on {facts.system} {facts.machine}",
        torch_line,
    ]
    lines.append("devices:")
    for d in facts.devices:
        where = f"{d.kind}:{d.index}" if d.kind == "cuda" else d.kind
        memory = f", {_gib(d.free)} free of {_gib(d.total)}" if d.total is not None else ""
        state = "" if d.usable else "  <- seen by the system, not usable by this torch build"
        lines.append(f"  {where}: {d.name}{memory}{state}")
    if facts.driver_cuda:
        lines.append(f"NVIDIA driver: supports CUDA up to {facts.driver_cuda}")
    lines.append(
        f"threads: torch uses {facts.threads} of {facts.cpu_count} CPU cores (--threads N to change)"
    )
    lines.append("optional extras:")
    lines.extend(f"  {label}: {version or 'not installed'}" for label, version in facts.extras.items())
    lines.append("folders:")
    lines.extend(f"  {label}: {path}" for label, path in facts.folders.items())
    fix = torch_fix(facts)
    if fix:
        lines.append(f"a GPU is present but this torch cannot use it; to use it run: {fix}")
    return lines


def device_tooltip() -> str:
    """The widgets' device tooltip: what 'auto' picks and the facts behind it, without importing torch unless it
    is already loaded."""
    facts = gather_facts(use_torch="torch" in sys.modules)
    usable = [d for d in facts.devices if d.usable]
    names = "; ".join(f"{d.kind}: {d.name}" + (f" ({_gib(d.free)} free)" if d.free else "") for d in usable)
    text = [
        "'auto' uses a CUDA GPU, then Apple MPS, then the CPU.",
        f"torch {facts.torch_version} ({facts.build}); devices: {names}; {facts.threads} threads.",
    ]
    fix = torch_fix(facts)
    if fix:
        text.append(f"A GPU is present but this torch cannot use it: {fix}")
    text.append("Details: napari-unet doctor")
    return "\n".join(text)
