"""The README's promise: its test command is the one `.ci/run` runs, and its quick start names the demo."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    cmds = [ln.strip() for ln in lines if "pytest" in ln and not ln.lstrip().startswith("#")]
    assert len(cmds) == 1, cmds
    return cmds[0]


def test_readme_test_command_is_the_ci_command():
    readme = (ROOT / "README.md").read_text()
    assert _ci_test_command() in readme


def test_readme_main_command_runs_the_demo_after_installing_torch_first():
    readme = (ROOT / "README.md").read_text()
    main = [ln for ln in readme.splitlines() if "napari-unet demo" in ln and "pip install" in ln]
    assert main, "the quick start needs one command that installs and runs the demo"
    assert re.search(r"torch==2\.13\.0.*napari-unet demo", main[0])


def test_no_install_line_fetches_pypis_other_napari_unet():
    """PyPI's ``napari-unet`` is another project: every install line names a clone or this repository."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for match in re.finditer(
        r"pip install[^`\n&]*", text
    ):  # one install command, up to `, && or the line end
        line = match.group(0)
        if "napari-unet" in line:
            assert " @ git+" in line, f"this README line installs PyPI's napari-unet: {line}"
