"""The model a napari session is working with, shared by the Train and Segment widgets.

No Qt and no torch here: the session only knows where the current checkpoint lives on disk, the checkpoint's
metadata (the dict of :func:`napari_unet.checkpoint.load_checkpoint` without the weights) and a one-line
description for the user. Whoever needs the network loads it from ``path`` in its own worker thread, so the two
widgets never share a mutable ``torch.nn.Module`` across threads (``predict_stack`` may move a model to a device).

Each viewer has its own session (:func:`session_for`), so two viewers, or two tests, never see each other's model.
Checkpoints written while training go to a per-session temporary folder (:meth:`ModelSession.new_run_dir`) that
lives as long as the session. A trained model, once set, is kept: :meth:`ModelSession.set` copies it into the user's
data folder (:func:`models_dir`, ``$NAPARI_UNET_DATA_DIR/models`` when set) and the session holds that copy, so
closing napari loses nothing; :func:`recent_models` lists the kept models and :meth:`ModelSession.open_recent` makes
one current again. :meth:`ModelSession.save` copies the current checkpoint to where the user wants it.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from psygnal import Signal

from ._recent import DATA_DIR_ENV, MAX_KEPT, RecentModel, keep_model, models_dir, recent_models

__all__ = [
    "DATA_DIR_ENV",
    "MAX_KEPT",
    "ModelSession",
    "RecentModel",
    "SessionModel",
    "models_dir",
    "recent_models",
    "session_for",
]


@dataclass(frozen=True)
class SessionModel:
    """One usable model: a checkpoint file and what it says about itself.

    Attributes
    ----------
    path : Path
        The checkpoint file (``torch.load(..., weights_only=True)``-able dict, see ``napari_unet.checkpoint``).
    meta : dict
        The checkpoint dict without ``state_dict``: ``model_kwargs``, ``normalization``, ``label_values``,
        ``class_names``, ``history``...
    description : str
        One line for the user, e.g. ``"trained on 'EM membranes', 300 iterations, validation Dice 0.86"``.
    source : str
        ``"trained"`` (by the Train widget in this session) or ``"file"`` (opened from disk).
    saved_to : Path | None
        Where the user last saved this model with :meth:`ModelSession.save` (None until then).
    kept : bool
        True when ``path`` is in the data folder (:func:`models_dir`), so the model outlives the session.
    note : str
        Empty, or one line for the user about a problem, e.g. that a trained model could not be kept in the
        data folder (then ``path`` is the run folder's file, lost when napari closes unless saved).
    """

    path: Path
    meta: dict = field(repr=False)
    description: str = ""
    source: str = "trained"
    saved_to: Path | None = None
    kept: bool = False
    note: str = ""

    @property
    def n_classes(self) -> int:
        return int(self.meta.get("model_kwargs", {}).get("n_classes", len(self.label_values)))

    @property
    def in_channels(self) -> int:
        return int(self.meta.get("model_kwargs", {}).get("in_channels", 1))

    @property
    def label_values(self) -> list[int]:
        return [int(v) for v in self.meta.get("label_values", [])]

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names") or []
        return [str(n) for n in names]


class ModelSession:
    """The current model of one viewer, with a signal when it changes.

    Signals
    -------
    changed(SessionModel | None)
        Emitted after :meth:`set` or :meth:`clear`.
    """

    changed = Signal(object)
    #: At most this many trained models are kept in the data folder; the oldest are deleted.
    keep_limit: int = MAX_KEPT

    def __init__(self) -> None:
        self._current: SessionModel | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._runs = 0
        _LIVE.add(self)

    @property
    def current(self) -> SessionModel | None:
        """The model the widgets use by default, or None before anything was trained or opened."""
        return self._current

    def set(
        self,
        path: str | Path,
        meta: dict,
        *,
        description: str = "",
        source: str = "trained",
        image: str | None = None,
        keep: bool | None = None,
    ) -> SessionModel:
        """Make the checkpoint at ``path`` the session's model and emit :attr:`changed`.

        A trained model is first kept: copied into :func:`models_dir` (as
        ``2026-12-03_1432_membranes-em_300it.pt``) and listed by :func:`recent_models`; the session then holds
        the copy. When that fails (read-only or full disk) the session holds ``path`` itself, and the model's
        :attr:`SessionModel.note` (also issued as a ``RuntimeWarning``, which napari shows) says it was not kept.

        Parameters
        ----------
        path : str or Path
            An existing checkpoint file.
        meta : dict
            Its metadata (the checkpoint dict; a ``state_dict`` entry, if present, is dropped so the session holds
            no tensors).
        description, source
            See :class:`SessionModel`.
        image : str, optional
            The training image's name, for the kept file's name; read from ``description`` (``"... on 'name'"``)
            when not given.
        keep : bool, optional
            Copy the model into the data folder; by default only when ``source == "trained"``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"The model file {path} does not exist.")
        meta = {k: v for k, v in dict(meta).items() if k != "state_dict"}
        kept, note = _in_models_dir(path), ""
        if (source == "trained" if keep is None else keep) and not kept:
            try:
                path = self._keep(path, meta, description, image).path
                kept = True
            except (OSError, ValueError, TypeError) as exc:  # never lose the model over keeping it
                note = (
                    f"The model could not be kept in {models_dir()} ({exc}); it is lost when napari closes "
                    "unless you save it."
                )
                warnings.warn(note, RuntimeWarning, stacklevel=2)
        self._current = SessionModel(
            path=path, meta=meta, description=description, source=source, kept=kept, note=note
        )
        self.changed.emit(self._current)
        return self._current

    def open_recent(self, entry: RecentModel | str | Path) -> SessionModel:
        """Make a kept model (an entry of :func:`recent_models`, or any checkpoint file) the session's model.

        Reads the checkpoint's metadata with :func:`napari_unet.checkpoint.read_checkpoint` (this imports torch
        and reads the whole file: call it from a worker thread where that matters).

        Returns
        -------
        SessionModel
            The new current model (``source="file"``), also emitted by :attr:`changed`.

        Raises
        ------
        FileNotFoundError
            If the file is gone.
        napari_unet.checkpoint.CheckpointError
            If it is not a readable napari-unet checkpoint.
        """
        from .checkpoint import read_checkpoint  # torch: only when a model is opened

        path = entry.path if isinstance(entry, RecentModel) else Path(entry)
        description = entry.description if isinstance(entry, RecentModel) else ""
        return self.set(path, read_checkpoint(path), description=description or path.name, source="file")

    def _keep(self, path: Path, meta: dict, description: str, image: str | None) -> RecentModel:
        in_use = [s._current.path for s in list(_LIVE) if s._current is not None]
        return keep_model(
            path, meta, description=description, image=image, limit=self.keep_limit, protect=in_use
        )

    def clear(self) -> None:
        """Forget the current model (its files stay where they are)."""
        self._current = None
        self.changed.emit(None)

    def save(self, dest: str | Path) -> Path:
        """Copy the current checkpoint to ``dest`` (``.pt`` is appended when there is no suffix).

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        RuntimeError
            If there is no model yet.
        """
        if self._current is None:
            raise RuntimeError("There is no model to save yet: train one first (or open a model file).")
        dest = Path(dest).expanduser()
        if not dest.suffix:
            dest = dest.with_suffix(".pt")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.resolve() != self._current.path.resolve():
            shutil.copyfile(self._current.path, dest)
        self._current = replace(self._current, saved_to=dest)
        self.changed.emit(self._current)
        return dest

    def new_run_dir(self, prefix: str = "run") -> Path:
        """A fresh folder under the session's temporary folder (``.../run-001``, ``run-002``...).

        Training writes one run's checkpoints there; earlier runs keep their folders, so the current model's
        file stays valid while a new run writes its own. Segmentation of stacks too large for memory writes its
        disk-backed outputs into one (``prefix="output"``). Everything is removed when the session is garbage
        collected or Python exits; a trained model given to :meth:`set` is copied out of it into the data folder.
        """
        self._runs += 1
        run = self._tmp_root() / f"{prefix}-{self._runs:03d}"
        run.mkdir(parents=True, exist_ok=False)
        return run

    def output_dir(self, name: str) -> Path:
        """The session's folder ``name`` (created when missing, the same one each time it is asked for).

        A whole-stack segmentation too big for memory writes its resumable store into the folder named after what
        decides its result, so pressing Segment again after a cancel finds the slices already done. Removed with
        the session, like :meth:`new_run_dir`'s folders.
        """
        folder = self._tmp_root() / f"segment-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _tmp_root(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="napari-unet-")
        return Path(self._tmp.name)


_SESSIONS: dict[int, ModelSession] = {}
_LIVE: weakref.WeakSet[ModelSession] = weakref.WeakSet()  # every session, so pruning spares models in use


def _in_models_dir(path: Path) -> bool:
    try:
        return path.resolve().parent == models_dir().resolve()
    except OSError:
        return False


def session_for(owner: Any) -> ModelSession:
    """The :class:`ModelSession` of ``owner`` (normally a ``napari.Viewer``), created on first use.

    napari hands each plugin widget its own proxy of the viewer (``PublicOnlyProxy``); the proxy is unwrapped so
    that every widget of one viewer gets the same session. The session is dropped when the viewer is garbage
    collected.
    """
    for _ in range(8):  # proxies of proxies, should anyone nest them
        inner = getattr(owner, "__wrapped__", None)
        if inner is None or inner is owner:
            break
        owner = inner
    key = id(owner)
    session = _SESSIONS.get(key)
    if session is None:
        session = _SESSIONS[key] = ModelSession()
        try:
            weakref.finalize(owner, _SESSIONS.pop, key, None)
        except TypeError:  # not weak-referenceable: keep the session for the life of the process
            pass
    return session
