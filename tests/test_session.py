"""The model a napari session works with: run folders, saving, change signals, trained models kept on disk
(no viewer needed)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from napari_unet import _recent
from napari_unet.session import ModelSession, models_dir, recent_models

DESCRIPTION = "trained on 'EM membranes', 300 it., best validation Dice 0.862 at it. 250"
META = {"label_values": [1, 2], "class_names": ["membrane", "cell"], "state_dict": {"w": 0}}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data folder for one test (the session-wide one of conftest is shared by all tests)."""
    folder = tmp_path / "data"
    monkeypatch.setenv("NAPARI_UNET_DATA_DIR", str(folder))
    return folder


def _run_checkpoint(session: ModelSession, content: bytes = b"weights"):
    path = session.new_run_dir() / "best.pt"
    path.write_bytes(content)
    return path


def test_session_save_and_run_folders(tmp_path, data_dir):
    session = ModelSession()
    with pytest.raises(RuntimeError, match="no model to save"):
        session.save(tmp_path / "m.pt")
    first, second = session.new_run_dir(), session.new_run_dir()
    assert first != second and first.is_dir() and second.is_dir()
    checkpoint = first / "best.pt"
    checkpoint.write_bytes(b"weights")
    seen = []
    session.changed.connect(seen.append)
    session.set(checkpoint, META, description="d")
    assert "state_dict" not in session.current.meta and session.current.label_values == [1, 2]
    dest = session.save(tmp_path / "sub" / "model")
    assert dest == tmp_path / "sub" / "model.pt" and dest.read_bytes() == b"weights"
    assert session.current.saved_to == dest and session.current.kept
    assert [m is not None for m in seen] == [True, True]


def test_the_data_folder_is_the_environment_variable_or_the_users(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_UNET_DATA_DIR", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere" / "models"
    monkeypatch.delenv("NAPARI_UNET_DATA_DIR")
    platformdirs = pytest.importorskip("platformdirs")
    assert models_dir() == Path(platformdirs.user_data_dir("napari-unet", appauthor=False)) / "models"


def test_a_trained_model_is_kept_under_a_readable_name_and_outlives_its_run_folder(data_dir):
    session = ModelSession()
    run_file = _run_checkpoint(session)
    model = session.set(run_file, META, description=DESCRIPTION, source="trained")
    assert model.kept and not model.note and model.source == "trained"
    assert model.path.parent == data_dir / "models" and model.path.read_bytes() == b"weights"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{4}_em-membranes_300it\.pt", model.path.name), model.path.name
    assert not [p for p in model.path.parent.iterdir() if p.name.endswith(".part")]  # no temporary file left
    # the run folder goes with the session (napari closing): the kept copy stays
    session._tmp.cleanup()
    assert not run_file.exists() and model.path.is_file()
    (entry,) = recent_models()
    assert entry.path == model.path and entry.description == DESCRIPTION and entry.image == "em-membranes"
    assert (
        entry.iterations == 300 and entry.label_values == (1, 2) and entry.class_names == ("membrane", "cell")
    )
    assert entry.title.endswith(DESCRIPTION)
    index = json.loads((data_dir / "models" / "recent.json").read_text())
    assert [item["path"] for item in index["models"]] == [model.path.name]


def test_models_opened_from_files_are_not_copied(data_dir, tmp_path):
    path = tmp_path / "mine.pt"
    path.write_bytes(b"weights")
    model = ModelSession().set(path, META, description="a file", source="file")
    assert model.path == path and not model.kept
    assert recent_models() == [] and not (data_dir / "models").exists()


def test_the_name_says_the_image_and_iterations_when_given_and_never_repeats(data_dir):
    session = ModelSession()
    a = session.set(_run_checkpoint(session), META, image="Stack #1 / crop", source="trained")
    b = session.set(_run_checkpoint(session), META, image="Stack #1 / crop", source="trained")
    assert a.path.name.endswith("_stack-1-crop.pt") and a.path != b.path and a.path.is_file()
    history = {"label_values": [1, 2], "history": {"iteration": [10, 20, 40]}}
    c = session.set(_run_checkpoint(session), history, description="no image here")
    assert c.path.name.endswith("_model_40it.pt")


def test_recent_models_are_newest_first_and_limited(data_dir):
    session = ModelSession()
    kept = [session.set(_run_checkpoint(session), META, description=f"on 'im{i}', {i} it.") for i in range(4)]
    newest_first = [m.path for m in reversed(kept)]
    assert [e.path for e in recent_models()] == newest_first
    assert [e.path for e in recent_models(limit=2)] == newest_first[:2]
    # the same minute, different dates in the index: the order follows the index's dates
    index_path = data_dir / "models" / "recent.json"
    index = json.loads(index_path.read_text())
    for item, day in zip(index["models"], ["01", "02", "03", "04"], strict=True):
        item["created"] = f"2026-01-{day}T10:00:00"
    index_path.write_text(json.dumps(index))
    assert [e.path for e in recent_models()] == newest_first[::-1]


def test_a_corrupt_or_missing_index_is_rebuilt_from_the_files_and_gone_files_drop_out(data_dir):
    session = ModelSession()
    first = session.set(_run_checkpoint(session), META, description=DESCRIPTION)
    second = session.set(_run_checkpoint(session), META, description="trained on 'other', 5 it.")
    index_path = data_dir / "models" / "recent.json"
    for broken in [
        "{not json",
        "[1, 2]",
        '{"models": [{"path": 3}, "x", {"path": "a.pt", "created": "no"}]}',
        "",
    ]:
        index_path.write_text(broken)
        entries = recent_models()
        assert {e.path for e in entries} == {first.path, second.path}, broken
    index_path.unlink()
    rebuilt = {e.path: e for e in recent_models()}
    assert (
        rebuilt[first.path].image == "em-membranes" and rebuilt[first.path].iterations == 300
    )  # from the name
    assert [e.path for e in recent_models()] == [second.path, first.path]  # newest first, by the files' times
    # a user's own file in the folder is not listed; a deleted model drops out, and the next write forgets it
    (data_dir / "models" / "my own model.pt").write_bytes(b"x")
    first.path.unlink()
    assert [e.path for e in recent_models()] == [second.path]
    third = session.set(_run_checkpoint(session), META, description="on 'x'")
    names = [item["path"] for item in json.loads(index_path.read_text())["models"]]
    assert names == [third.path.name, second.path.name]


def test_only_the_newest_auto_kept_models_are_kept(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ModelSession, "keep_limit", 3)
    other = ModelSession()  # another viewer, still using its (old) model
    in_use = other.set(_run_checkpoint(other), META, description="on 'in use'")
    users = data_dir / "models" / "my model.pt"  # a file the user put there: not ours to delete
    users.write_bytes(b"mine")
    session = ModelSession()
    saved = session.set(_run_checkpoint(session), META, description="on 'saved'")
    session.save(tmp_path / "saved_elsewhere.pt")
    kept = [session.set(_run_checkpoint(session), META, description=f"on 'm{i}'").path for i in range(5)]
    files = sorted(p.name for p in (data_dir / "models").glob("*.pt") if p != users)
    assert files == sorted([in_use.path.name, kept[-2].name, kept[-1].name])  # the oldest went, in-use spared
    assert not saved.path.exists() and (tmp_path / "saved_elsewhere.pt").is_file() and users.is_file()
    assert [e.path for e in recent_models(limit=None)] == [kept[-1], kept[-2], in_use.path]


def test_when_the_data_folder_cannot_be_written_the_session_keeps_the_run_file_and_says_so(
    tmp_path, monkeypatch
):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NAPARI_UNET_DATA_DIR", str(blocker / "data"))  # works as root too, unlike chmod
    session = ModelSession()
    run_file = _run_checkpoint(session)
    with pytest.warns(RuntimeWarning, match="could not be kept"):
        model = session.set(run_file, META, description=DESCRIPTION, source="trained")
    assert model.path == run_file and not model.kept and "could not be kept" in model.note
    assert session.current is model and recent_models() == []
    assert session.save(tmp_path / "rescued.pt").read_bytes() == b"weights"  # the user can still save it


def test_a_failed_copy_leaves_nothing_behind_and_a_failed_index_write_still_keeps_the_model(
    data_dir, monkeypatch
):
    session = ModelSession()
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_recent.os, "replace", full_disk)
    with pytest.warns(RuntimeWarning, match="No space left"):
        model = session.set(_run_checkpoint(session), META, description=DESCRIPTION)
    assert not model.kept and list((data_dir / "models").iterdir()) == []

    def index_fails(src, dst):
        if str(dst).endswith("recent.json"):
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(_recent.os, "replace", index_fails)
    model = session.set(_run_checkpoint(session), META, description=DESCRIPTION)
    assert model.kept and [e.path for e in recent_models()] == [model.path]
    assert not [p for p in (data_dir / "models").iterdir() if p.name.endswith(".part")]


def test_open_recent_makes_a_kept_model_current_again(data_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from napari_unet.checkpoint import CheckpointError, save_checkpoint
    from napari_unet.model import UNet

    torch.manual_seed(0)
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(
        path,
        UNet(in_channels=1, n_classes=2, depth=2, features=4),
        normalization={"mode": "percentile", "low": 0.0, "high": 255.0},
        label_values=[1, 2],
        class_names=["membrane", "cell"],
    )
    ModelSession().set(path, {"label_values": [1, 2]}, description=DESCRIPTION)
    (entry,) = recent_models()
    later = ModelSession()  # the next napari
    seen = []
    later.changed.connect(seen.append)
    model = later.open_recent(entry)
    assert model.path == entry.path and model.kept and model.source == "file" and seen == [model]
    assert model.description == DESCRIPTION and model.n_classes == 2 and "state_dict" not in model.meta
    assert len(recent_models()) == 1  # opening is not keeping again
    entry.path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        later.open_recent(entry)
