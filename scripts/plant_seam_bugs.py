"""Plant one seam bug at a time in a copy of the tree and check that the test suite catches each.

A seam is a place where two parts must agree (training and prediction padding, image and label mirroring, the
validation crop and whole-slice prediction, fine-tuning and its checkpoint, the CLI and the engine). Each bug below
is one small edit; the script copies ``src/`` and ``tests/`` to a temporary folder, applies the edit there (the
checkout is never touched), runs the tests that guard that seam and reports CAUGHT or MISSED::

    python scripts/plant_seam_bugs.py            # every bug (about 3 minutes on 2 cores)
    python scripts/plant_seam_bugs.py cli-tta    # one of them

Exits 1 when a bug is missed or a planted edit no longer matches the code (the list must follow the code).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "src/napari_unet/cli/_train.py"
CLI_PREDICT = "src/napari_unet/cli/_predict.py"
CLI_EVALUATE = "src/napari_unet/cli/_evaluate.py"
TRAIN_TESTS = ["tests/train"]
CLI_TESTS = ["tests/test_cli.py"]

# name: (file, text to replace, replacement, tests that must catch it)
BUGS: dict[str, tuple[str, str, str, list[str]]] = {
    "finetune-loads-no-weights": (
        "src/napari_unet/train/_run.py",
        '        model.load_state_dict(init_ckpt["state_dict"])\n',
        "",
        TRAIN_TESTS,
    ),
    "prediction-pads-symmetric": (
        "src/napari_unet/tiling.py",
        'return np.pad(image, widths, mode="reflect")',
        'return np.pad(image, widths, mode="symmetric")',
        TRAIN_TESTS,
    ),
    "training-labels-clamped": (
        "src/napari_unet/train/_sampler.py",
        "lab = self.data.classes[z][iy[:, None], ix[None, :]]",
        "lab = self.data.classes[z][np.clip(np.arange(oy, oy + p), 0, ny - 1)[:, None], "
        "np.clip(np.arange(ox, ox + p), 0, nx - 1)[None, :]]",
        TRAIN_TESTS,
    ),
    "validation-crop-off-by-one": (
        "src/napari_unet/train/_validate.py",
        "(slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))",
        "(slice(y0 - cy0 + 1, y1 - cy0 + 1), slice(x0 - cx0, x1 - cx0))",
        TRAIN_TESTS,
    ),
    "cli-ignores-tta": (CLI_PREDICT, '"tta": args.tta}', '"tta": False}', CLI_TESTS),
    "cli-ignores-init": (CLI, "init=args.init,", "init=None,", CLI_TESTS),
    "cli-ignores-dense": (CLI, '"dense": args.dense or None,', '"dense": None,', CLI_TESTS),
    "cli-ignores-val-slices": (
        CLI,
        '"val_slices": _parse_slices(args.val_slices, "--val-slices"),',
        '"val_slices": None,',
        CLI_TESTS,
    ),
    "cli-ignores-preset": (CLI, 'args.preset or "fast-cpu"', '"fast-cpu"', CLI_TESTS),
    "cli-ignores-padding": (CLI, '"padding": args.padding,', '"padding": None,', CLI_TESTS),
    "cli-ignores-seed": (CLI, '"seed": args.seed,', '"seed": None,', CLI_TESTS),
    "cli-ignores-lr": (CLI, '"lr": args.lr,', '"lr": None,', CLI_TESTS),
    "cli-ignores-minutes": (CLI, '"minutes": args.minutes,', '"minutes": None,', CLI_TESTS),
    "cli-evaluate-ignores-slices": (CLI_EVALUATE, "pred, gt = pred[start:stop], gt[start:stop]", "pass", CLI_TESTS),
}


def _pytest(copy: Path, tests: list[str]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    cmd = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
    run = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
    summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line][-1:]
    return run.returncode, " ".join(summary)


def plant(name: str, copy: Path) -> bool:
    """Apply bug ``name`` in ``copy``, run its tests, restore the file; True when a test failed."""
    rel, old, new, tests = BUGS[name]
    path = copy / rel
    original = path.read_text()
    if old not in original:
        raise SystemExit(f"{name}: the text to replace is no longer in {rel}; update this script")
    path.write_text(original.replace(old, new, 1))
    try:
        returncode, summary = _pytest(copy, tests)
    finally:
        path.write_text(original)
    print(f"{name}: {'CAUGHT' if returncode else 'MISSED'} {summary}", flush=True)
    return returncode != 0


def main(argv: list[str]) -> int:
    names = argv or list(BUGS)
    unknown = [n for n in names if n not in BUGS]
    if unknown:
        print(f"unknown bug(s) {unknown}; choose from {sorted(BUGS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="napari-unet-seams-") as tmp:
        copy = Path(tmp)
        for part in ("src", "tests", "sample_data", "pyproject.toml"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(
                    source, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                shutil.copy(source, copy / part)
        # The unplanted copy must pass, or a "caught" below would mean nothing.
        suites = sorted({test for name in names for test in BUGS[name][3]})
        returncode, summary = _pytest(copy, suites)
        print(f"baseline (no bug planted): {summary}", flush=True)
        if returncode:
            print("the unplanted copy fails its tests: fix that first", file=sys.stderr)
            return 1
        missed = [name for name in names if not plant(name, copy)]
    print(
        f"{len(names) - len(missed)} of {len(names)} planted bugs caught"
        + (f"; missed {missed}" if missed else "")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
