"""torch's OpenMP threads wait passively in napari-unet's processes (CLI and widgets), unless the user said otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, sys; {setup}; print(os.environ.get('OMP_WAIT_POLICY', '-'), 'torch' in sys.modules)"
CALM = "from napari_unet._openmp import calm_openmp; calm_openmp()"


def _run(setup: str, env_policy: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_passive_before_torch_loads():
    assert _run(CALM) == "PASSIVE False"


def test_a_users_policy_and_an_already_loaded_torch_are_left_alone():
    assert _run(CALM, env_policy="ACTIVE") == "ACTIVE False"
    assert _run("import torch; " + CALM) == "- True"


def test_every_cli_command_calls_it_first(monkeypatch):
    from napari_unet import cli

    called = []
    monkeypatch.setattr(cli, "calm_openmp", lambda: called.append(True))
    cli.main(["info", os.devnull])  # not a TIFF: an error, after the call
    assert called


def test_the_widgets_jobs_call_it():
    from napari_unet._widgets import _train_job

    assert _train_job.calm_openmp is __import__("napari_unet._openmp", fromlist=["x"]).calm_openmp
