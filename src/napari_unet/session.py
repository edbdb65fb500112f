"""The model a napari session is working with, shared by the Train and Segment widgets.

No Qt and no torch here: the session only knows where the current checkpoint lives on disk, the checkpoint's
metadata (the dict of :func:`napari_unet.checkpoint.load_checkpoint` without the weights) and a one-line
description for the user. Whoever needs the network loads it from ``path`` in its own worker thread, so the two
widgets never share a mutable ``torch.nn.Module`` across threads (``predict_stack`` may move a model to a device).

Each viewer has its own session (:func:`session_for`), so two viewers, or two tests, never see each other's model.
Checkpoints written while training go to a per-session temporary folder (:meth:`ModelSession.new_run_dir`) that
lives as long as the session; :meth:`ModelSession.save` copies the current checkpoint to where the user wants it.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import Signal

__all__ = ["ModelSession", "SessionModel", "session_for"]


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
        Where the user last saved this model with :meth:`ModelSession.save` (None while it only exists in the
        session's temporary folder).
    """

    path: Path
    meta: dict = field(repr=False)
    description: str = ""
    source: str = "trained"
    saved_to: Path | None = None

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

    def __init__(self) -> None:
        self._current: SessionModel | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._runs = 0

    @property
    def current(self) -> SessionModel | None:
        """The model the widgets use by default, or None before anything was trained or opened."""
        return self._current

    def set(
        self, path: str | Path, meta: dict, *, description: str = "", source: str = "trained"
    ) -> SessionModel:
        """Make the checkpoint at ``path`` the session's model and emit :attr:`changed`.

        Parameters
        ----------
        path : str or Path
            An existing checkpoint file.
        meta : dict
            Its metadata (the checkpoint dict; a ``state_dict`` entry, if present, is dropped so the session holds
            no tensors).
        description, source
            See :class:`SessionModel`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"The model file {path} does not exist.")
        meta = {k: v for k, v in dict(meta).items() if k != "state_dict"}
        self._current = SessionModel(path=path, meta=meta, description=description, source=source)
        self.changed.emit(self._current)
        return self._current

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
        self._current = SessionModel(
            path=self._current.path,
            meta=self._current.meta,
            description=self._current.description,
            source=self._current.source,
            saved_to=dest,
        )
        self.changed.emit(self._current)
        return dest

    def new_run_dir(self, prefix: str = "run") -> Path:
        """A fresh folder under the session's temporary folder (``.../run-001``, ``run-002``...).

        Training writes one run's checkpoints there; earlier runs keep their folders, so the current model's
        file stays valid while a new run writes its own. Segmentation of stacks too large for memory writes its
        disk-backed outputs into one (``prefix="output"``). Everything is removed when the session is garbage
        collected or Python exits; use :meth:`save` (or napari's File ▸ Save) to keep things.
        """
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="napari-unet-")
        self._runs += 1
        run = Path(self._tmp.name) / f"{prefix}-{self._runs:03d}"
        run.mkdir(parents=True, exist_ok=False)
        return run


_SESSIONS: dict[int, ModelSession] = {}


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
