"""Trained models kept on disk between napari sessions, and the list of the recent ones.

No Qt and no torch here. A model trained in napari is copied from its run folder into the user's data folder
(:func:`models_dir`) under a readable name, ``2026-12-03_1432_membranes-em_300it.pt``, and listed in a small JSON
index, ``recent.json``, beside it. Both are written to a temporary name in the same folder and renamed
(``os.replace``), so an interrupted write never leaves a truncated model or index.

The files are the truth and the index only annotates them: an entry whose file is gone is dropped, and a missing
or corrupt index (or a model file it does not list, e.g. written by a second napari at the same moment) is rebuilt
from the names of the ``*.pt`` files present. At most :data:`MAX_KEPT` models are kept; older ones are deleted,
but only files this module wrote there (their names say so), never a model the user saved elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR_ENV",
    "INDEX_NAME",
    "MAX_KEPT",
    "RecentModel",
    "keep_model",
    "models_dir",
    "recent_models",
]

DATA_DIR_ENV = "NAPARI_UNET_DATA_DIR"
INDEX_NAME = "recent.json"
MAX_KEPT = 20
_PARTIAL = (".keep-", ".part")  # prefix, suffix of files being written; never match ``*.pt``
_STALE_PARTIAL_S = 3600.0  # a partial file this old is left over from a crash
# 2026-12-03_1432_membranes-em_300it.pt, with _2, _3... when the same minute already has that name
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{4})_([a-z0-9-]+?)(?:_(\d+)it)?(?:_\d+)?\.pt$")
_STAMP = "%Y-%m-%d_%H%M"


@dataclass(frozen=True)
class RecentModel:
    """A model kept in the data folder, as the recent-models list shows it.

    Attributes
    ----------
    path : Path
        The checkpoint file (in :func:`models_dir`).
    created : datetime
        When it was kept (local time, no time zone).
    description : str
        The session's one-line description, e.g. ``"trained on 'EM membranes', 300 it."``; empty when the index
        was rebuilt from the file names.
    image : str
        The sanitised name of the image it was trained on (``"em-membranes"``), or ``""``.
    iterations : int or None
        Training iterations, when known.
    label_values, class_names : tuple
        From the checkpoint (model class i -> label value, and its name); empty when not known.
    """

    path: Path
    created: datetime
    description: str = ""
    image: str = ""
    iterations: int | None = None
    label_values: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """One line for a menu: ``"2026-12-03 14:32 — trained on 'EM membranes', 300 it."``."""
        return f"{self.created:%Y-%m-%d %H:%M} — {self.description or self.path.name}"

    def _to_json(self) -> dict[str, Any]:
        return {
            "path": self.path.name,
            "created": self.created.isoformat(timespec="microseconds"),  # orders models kept in one second
            "description": self.description,
            "image": self.image,
            "iterations": self.iterations,
            "label_values": list(self.label_values),
            "class_names": list(self.class_names),
        }

    @classmethod
    def _from_json(cls, item: Any, folder: Path) -> RecentModel | None:
        """The entry of one index item, or None when the item is malformed or its file is gone."""
        try:
            path = folder / Path(str(item["path"])).name  # never follow a path out of the folder
            created = _local(datetime.fromisoformat(str(item["created"])))
            iterations = item.get("iterations")
            entry = cls(
                path=path,
                created=created,
                description=str(item.get("description") or ""),
                image=str(item.get("image") or ""),
                iterations=None if iterations is None else int(iterations),
                label_values=tuple(int(v) for v in item.get("label_values") or ()),
                class_names=tuple(str(n) for n in item.get("class_names") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return entry if path.is_file() else None


def models_dir() -> Path:
    """The folder where trained models are kept: ``$NAPARI_UNET_DATA_DIR/models`` when that variable is set,
    else ``platformdirs.user_data_dir("napari-unet")/models`` (``~/.local/share/napari-unet/models`` on Linux).

    The folder is not created here (:func:`keep_model` does).
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser() / "models"
    import platformdirs  # light, but only needed here

    return Path(platformdirs.user_data_dir("napari-unet", appauthor=False)) / "models"


def recent_models(limit: int | None = 10) -> list[RecentModel]:
    """The kept models, newest first.

    Parameters
    ----------
    limit : int or None
        At most this many (None: all).

    Returns
    -------
    list of RecentModel
        Only entries whose file exists; an empty list when there is no data folder or it cannot be read.
    """
    entries = _read(models_dir())
    return entries if limit is None else entries[: max(int(limit), 0)]


def keep_model(
    path: str | os.PathLike,
    meta: dict,
    *,
    description: str = "",
    image: str | None = None,
    iterations: int | None = None,
    limit: int = MAX_KEPT,
    protect: Iterable[str | os.PathLike] = (),
) -> RecentModel:
    """Copy the checkpoint at ``path`` into :func:`models_dir`, list it first in the index, prune the oldest.

    Parameters
    ----------
    path : path-like
        An existing checkpoint (normally a run folder's ``best.pt``). A file already in the models folder is
        listed, not copied again.
    meta : dict
        Its metadata; ``label_values`` and ``class_names`` (and ``history["iteration"]`` when ``iterations`` is
        not given) go into the index.
    description : str
        The session's one-line description. When ``image`` or ``iterations`` is None they are read from it, as
        the Train widget writes it (``"trained on 'EM membranes', 300 it. ..."``).
    image : str, optional
        The image's name, for the file name (sanitised: ``"EM membranes"`` -> ``em-membranes``).
    iterations : int, optional
        For the file name (``..._300it.pt``).
    limit : int
        Keep at most this many auto-kept models; the oldest others are deleted.
    protect : iterable of path-like
        Files never deleted by the pruning (models other sessions are using).

    Returns
    -------
    RecentModel
        The kept copy.

    Raises
    ------
    OSError
        When the folder cannot be created or the copy cannot be written (nothing is left behind then).
    ValueError, TypeError
        When ``meta["label_values"]`` are not integers (before anything is written).

    Notes
    -----
    A failure to write the index or to prune is not an error: the copy is kept and listed from its name.
    """
    src, folder = Path(path), models_dir()
    image = _sanitise(image if image is not None else _image_from(description))
    if iterations is None:
        iterations = _iterations_from(description, meta)
    label_values = tuple(int(v) for v in meta.get("label_values") or ())
    class_names = tuple(str(n) for n in meta.get("class_names") or ())
    now = _local(datetime.now())
    folder.mkdir(parents=True, exist_ok=True)
    if _same_dir(src.parent, folder):
        dest = src
    else:
        dest = _unique(folder, now.strftime(_STAMP), image, iterations)
        _copy_atomically(src, dest)
    entry = RecentModel(
        path=dest,
        created=now,
        description=description,
        image=image,
        iterations=iterations,
        label_values=label_values,
        class_names=class_names,
    )
    entries = [entry] + [e for e in _read(folder) if e.path.name != dest.name]
    entries = _prune(entries, folder, limit, {dest, *map(Path, protect)})
    try:
        _write_index(folder, entries)
    except OSError:
        pass  # the model is kept: the next read lists it from its file name
    _drop_stale_partials(folder)
    return entry


# -- helpers ------------------------------------------------------------------------------------------------------


def _local(moment: datetime) -> datetime:
    """Naive local time, so that entries written with and without a time zone still sort together."""
    return moment.astimezone().replace(tzinfo=None)


def _sanitise(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower())
    return "-".join(words)[:40].strip("-") or "model"


def _image_from(description: str) -> str:
    found = re.search(r"\bon '([^']+)'", description)
    return found.group(1) if found else ""


def _iterations_from(description: str, meta: dict) -> int | None:
    found = re.search(r"(\d+)\s*(?:it\.|iterations?\b)", description)
    if found:
        return int(found.group(1))
    history = meta.get("history") or {}
    done = history.get("iteration") if isinstance(history, dict) else None
    try:
        return int(done[-1]) if done else None
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _unique(folder: Path, stamp: str, image: str, iterations: int | None) -> Path:
    base = f"{stamp}_{image}" + (f"_{iterations}it" if iterations is not None else "")
    dest, n = folder / f"{base}.pt", 1
    while dest.exists():
        n += 1
        dest = folder / f"{base}_{n}.pt"
    return dest


def _copy_atomically(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_PARTIAL[0], suffix=_PARTIAL[1], dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_index(folder: Path, entries: list[RecentModel]) -> None:
    text = json.dumps({"version": 1, "models": [e._to_json() for e in entries]}, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=_PARTIAL[0], suffix=_PARTIAL[1], dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, folder / INDEX_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(folder: Path) -> list[RecentModel]:
    """The index's entries whose files exist, plus any of our model files it does not list; newest first."""
    try:
        items = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8")).get("models", [])
        if not isinstance(items, list):
            items = []
    except (OSError, ValueError, AttributeError):  # missing, unreadable or corrupt: rebuilt from the files
        items = []
    entries: dict[str, RecentModel] = {}
    for item in items:
        entry = RecentModel._from_json(item, folder)
        if entry is not None and entry.path.name not in entries:
            entries[entry.path.name] = entry
    try:
        files = [p for p in folder.glob("*.pt") if _NAME.match(p.name) and p.name not in entries]
    except OSError:
        files = []
    for file in files:
        entry = _from_name(file)
        if entry is not None:
            entries[file.name] = entry
    return sorted(entries.values(), key=lambda e: (e.created, e.path.name), reverse=True)


def _from_name(file: Path) -> RecentModel | None:
    """The entry of a model file the index does not list; its time is the file's (the copy's) modification time."""
    found = _NAME.match(file.name)
    try:
        if found is None or not file.is_file():
            return None
        created = datetime.fromtimestamp(file.stat().st_mtime)
    except (ValueError, OSError):
        return None
    iterations = found.group(3)
    return RecentModel(
        path=file,
        created=created,
        image=found.group(2),
        iterations=None if iterations is None else int(iterations),
    )


def _prune(entries: list[RecentModel], folder: Path, limit: int, protect: set[Path]) -> list[RecentModel]:
    """Delete the oldest auto-kept files beyond ``limit`` (``entries`` is newest first); the entries left."""
    protected = {p.name for p in protect if _same_dir(p.parent, folder)}
    ours = [e for e in entries if _NAME.match(e.path.name) and _same_dir(e.path.parent, folder)]
    excess = len(ours) - max(int(limit), 1)
    gone: set[str] = set()
    for entry in reversed(ours):  # oldest first
        if excess <= 0:
            break
        if entry.path.name in protected:
            continue
        try:
            entry.path.unlink(missing_ok=True)
        except OSError:
            continue  # still there: still listed
        gone.add(entry.path.name)
        excess -= 1
    return [e for e in entries if e.path.name not in gone]


def _drop_stale_partials(folder: Path) -> None:
    """Remove partial files a crash left behind (an hour old: no write of ours takes that long)."""
    try:
        for tmp in folder.glob(f"{_PARTIAL[0]}*{_PARTIAL[1]}"):
            if time.time() - tmp.stat().st_mtime > _STALE_PARTIAL_S:
                tmp.unlink(missing_ok=True)
    except OSError:
        pass
