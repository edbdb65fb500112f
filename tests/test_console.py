"""The terminal side shared by the CLI and the demo: the progress line and the train / predict drivers."""

from __future__ import annotations

import io
from pathlib import Path

from napari_unet._console import ConsoleProgress, train_to_file


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_writes_throttled_lines_to_a_log():
    log = io.StringIO()
    bar = ConsoleProgress("train", log, every=3600)
    bar.update(1, 4, "first")
    bar.update(2, 4, "throttled")
    bar.update(3, 4, "validation", force=True)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "first" in lines[0] and "validation" in lines[1]
    assert lines[0].startswith("train [#######---") and "25.0%" in lines[0] and "75.0%" in lines[1]


def test_progress_redraws_one_line_on_a_terminal_and_ends_it():
    tty = _Terminal()
    with ConsoleProgress("predict", tty) as bar:
        bar.update(1, 2, force=True)
        bar.update(2, 2, force=True)
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "100.0%" in text


def test_an_interrupted_training_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    import napari_unet.train

    def interrupted(image, labels, config, *, init, checkpoint_dir, voxel_size):
        (Path(checkpoint_dir) / napari_unet.train.BEST_NAME).write_bytes(b"best so far")
        raise KeyboardInterrupt  # Ctrl-C while training
        yield  # a generator, like train()

    monkeypatch.setattr(napari_unet.train, "train", interrupted)
    log, out = io.StringIO(), tmp_path / "model.pt"
    assert train_to_file(None, None, None, out, stream=log) is None
    assert out.read_bytes() == b"best so far"
    assert f"kept the best checkpoint so far in {out}" in log.getvalue()
