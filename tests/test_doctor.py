"""napari-unet doctor: facts of this machine, and every branch of the torch fix with injected facts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from napari_unet.cli import main
from napari_unet.doctor import DeviceFact, Facts, device_tooltip, gather_facts, report_lines, torch_fix

CPU = DeviceFact("CPU (x86_64)", "cpu")


def _facts(**kw) -> Facts:
    base = dict(
        torch_version="2.13.0+cpu",
        build="CPU",
        devices=(CPU,),
        threads=4,
        cpu_count=8,
        extras={"napari (widgets)": "0.9", "bioimageio.spec (export)": None},
        folders={"models (kept by the widgets)": "/data/models"},
        system="Linux",
        machine="x86_64",
    )
    base.update(kw)
    return Facts(**base)


def test_cpu_only_machine_needs_no_fix():
    facts = _facts()
    assert torch_fix(facts) is None
    text = "\n".join(report_lines(facts))
    assert "torch 2.13.0+cpu (CPU build)" in text and "4 of 8 CPU cores" in text
    assert "bioimageio.spec (export): not installed" in text and "/data/models" in text
    assert "cannot use it" not in text


@pytest.mark.parametrize(
    ("driver", "tag"), [("12.8", "cu128"), ("13.1", "cu130"), ("12.7", "cu126"), (None, "cu130")]
)
def test_nvidia_gpu_with_cpu_torch_gets_the_matching_cuda_build(driver, tag):
    gpu = DeviceFact("NVIDIA H200", "cuda", 0, 130 * 1024**3, 139 * 1024**3, usable=False)
    facts = _facts(devices=(gpu, CPU), driver_cuda=driver)
    fix = torch_fix(facts)
    assert (
        fix
        == f"pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/{tag}"
    )
    text = "\n".join(report_lines(facts))
    assert "cuda:0: NVIDIA H200, 130.0 GiB free of 139.0 GiB  <- seen by the system, not usable" in text
    assert f"to use it run: {fix}" in text


def test_a_driver_too_old_for_every_build_is_named():
    gpu = DeviceFact("Tesla K80", "cuda", usable=False)
    fix = torch_fix(_facts(devices=(gpu, CPU), driver_cuda="11.4"))
    assert "update the driver" in fix and "11.4" in fix


def test_amd_gpu_gets_the_rocm_build_and_a_usable_gpu_none():
    assert "whl/rocm" in torch_fix(_facts(amd_gpu=True))
    assert torch_fix(_facts(amd_gpu=True, build="ROCm 6.4")) is None
    usable = DeviceFact("NVIDIA A100", "cuda", 0, 1, 2, usable=True)
    assert torch_fix(_facts(devices=(usable, CPU), build="CUDA 12.8", driver_cuda="12.8")) is None


def test_apple_silicon_with_a_cpu_build():
    assert "MPS" in torch_fix(_facts(system="Darwin", machine="arm64"))
    assert torch_fix(_facts(system="Darwin", machine="arm64", build="MPS")) is None


def test_facts_of_this_machine_without_importing_torch():
    code = (
        "import sys; from napari_unet.doctor import gather_facts; f = gather_facts(use_torch=False); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(f.build, len(f.devices))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    real = gather_facts()
    assert real.torch_version and real.devices[-1].kind == "cpu" and real.threads >= 1
    assert dataclasses.replace(real).build == real.build


def test_cli_doctor_and_the_widgets_tooltip(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "devices:" in out and "optional extras:" in out and "folders:" in out
    tip = device_tooltip()
    assert tip.startswith("'auto' uses a CUDA GPU") and "napari-unet doctor" in tip
