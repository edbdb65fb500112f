"""The model a napari session works with: run folders, saving, change signals (no viewer needed)."""

from __future__ import annotations

import pytest

from napari_unet.session import ModelSession


def test_session_save_and_run_folders(tmp_path):
    session = ModelSession()
    with pytest.raises(RuntimeError, match="no model to save"):
        session.save(tmp_path / "m.pt")
    first, second = session.new_run_dir(), session.new_run_dir()
    assert first != second and first.is_dir() and second.is_dir()
    checkpoint = first / "best.pt"
    checkpoint.write_bytes(b"weights")
    seen = []
    session.changed.connect(seen.append)
    session.set(checkpoint, {"label_values": [1, 2], "state_dict": {"w": 0}}, description="d")
    assert "state_dict" not in session.current.meta and session.current.label_values == [1, 2]
    dest = session.save(tmp_path / "sub" / "model")
    assert dest == tmp_path / "sub" / "model.pt" and dest.read_bytes() == b"weights"
    assert session.current.saved_to == dest and session.current.path == checkpoint
    assert [m is not None for m in seen] == [True, True]
