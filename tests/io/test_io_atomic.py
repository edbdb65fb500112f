"""io._atomic: the file appears whole under its name or not at all; the previous file survives a failure."""

from __future__ import annotations

import pytest

from napari_unet.io._atomic import atomic_copy, atomic_open, atomic_path


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_an_interrupt_is_handled_like_a_crash(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())


def test_complete_writes_and_copies_replace(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write("new")
    assert target.read_text() == "new"
    atomic_copy(target, tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_text() == "new"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(target, "a"):
            pass
