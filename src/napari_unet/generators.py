"""Running the project's long-work generators to the end (pure Python, no torch, no Qt).

Long work is a generator that yields small progress records and *returns* its result (house rule 3). Every place
that needs the result without a UI - the synchronous twins, the CLI, the demo, the widgets' worker jobs - drains it
with :func:`drain`, so the "send the callback's answer back, catch StopIteration, take its value" dance lives here
once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["drain", "relay"]

R = TypeVar("R")


def drain(generator: Generator[Any, Any, R], on_progress: Callable[[Any], Any] | None = None) -> R:
    """Run ``generator`` to the end and return what it returns.

    Parameters
    ----------
    generator : generator
        Yields progress records, returns the result.
    on_progress : callable, optional
        Called with every record. Whatever it returns is sent back into the generator (``train`` ends early and
        still returns its result when it receives ``"stop"``); ``None`` is sent when it returns nothing.

    Returns
    -------
    The generator's return value.

    Notes
    -----
    If ``on_progress`` raises (or the caller is interrupted, e.g. Ctrl-C), the generator is closed so that its
    ``finally`` blocks run (checkpoints kept, files flushed) before the exception propagates.
    """
    command = None
    try:
        while True:
            record = generator.send(command)
            command = on_progress(record) if on_progress is not None else None
    except StopIteration as stop:
        return stop.value
    except BaseException:
        generator.close()
        raise


def relay(generator: Generator[Any, None, R], record: Callable[..., Any]) -> Generator[Any, None, R]:
    """Re-yield a generator's progress in another form and return its result (for ``yield from``).

    Each item is passed to ``record`` (unpacked when it is a tuple, e.g. the tiler's ``(done, total)``) and what
    ``record`` returns is yielded; the generator's return value becomes this generator's return value.
    """
    while True:
        try:
            item = next(generator)
        except StopIteration as stop:
            return stop.value
        yield record(*item) if isinstance(item, tuple) else record(item)
