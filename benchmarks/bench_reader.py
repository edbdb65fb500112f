"""Time-to-first-slice and peak memory: napari-unet's TIFF reader vs napari's built-in reader on a big stack.

Usage::

    python benchmarks/bench_reader.py [--size-gib 2] [--dir DIR] [--keep] [--no-tiled] [--repeats 3]

Writes a uint8 (Z, 1024, 1024) stack of ``--size-gib`` GiB into a temporary folder (inside ``--dir`` when
given): an uncompressed ImageJ hyperstack (contiguous, what Fiji saves) and, unless ``--no-tiled``, a
zstd-compressed tiled BigTIFF. Then, for every file and reader, a fresh Python process opens the file the
way napari does (the reader plugin's ``get_reader(path)(path)``), takes slice 0 as a numpy array, and
reports the seconds for that and the peak resident memory it added (``VmHWM`` after a reset, minus the
resident size before; file pages mapped by a memory map count too). napari itself is imported first,
untimed, in both cases, as it is when a reader runs. Every case runs with a cold page cache for that file (evicted with
``posix_fadvise(DONTNEED)``, no root needed) and again warm. The files are deleted afterwards unless ``--keep``.

napari's built-in reader (``napari_builtins.io.napari_get_reader``, imageio + tifffile) loads the whole file
before showing anything; napari-unet's memory-maps contiguous data and wraps compressed data in dask, and
estimates contrast limits from five planes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

PLANE = 1024
# "later file": napari-unet with dask.array and zarr already imported (about 1.3 s on a 2-core machine, paid
# once per napari session by the first compressed file opened lazily; memory-mapped files never import them)
READERS = ("napari-unet", "napari-unet later file", "napari builtin")
TILE = 256

# runs in a fresh interpreter: imports are done (and not timed) before the clock starts
CHILD = r"""
import json, re, sys, time
import numpy as np
reader_name, path = sys.argv[1], sys.argv[2]
if reader_name.endswith("later file"):
    # a session that already opened one compressed file lazily has dask.array and zarr imported
    import dask.array, zarr
# both readers run inside napari, which has imported itself (dask, pint...) and built pint's unit registry for
# its first layer before any file is opened: do the same, untimed
import napari.layers
import pint
pint.get_application_registry().pixel
if reader_name.startswith("napari-unet"):
    from napari_unet._reader import get_reader
else:
    from napari_builtins.io import napari_get_reader as get_reader


def peak_kib():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))


def rss_kib():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))


# reset the peak-RSS mark (Linux >= 4.0) so the import peak does not hide what reading adds
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
rss0 = rss_kib()
t0 = time.perf_counter()
layers = get_reader(path)(path)
t_open = time.perf_counter() - t0
data = layers[0][0]
if isinstance(data, list):
    data = data[0]
first = np.asarray(data[0])
t_first = time.perf_counter() - t0
print(json.dumps({
    "open_s": t_open,
    "first_slice_s": t_first,
    "peak_rss_extra": (peak_kib() - rss0) * 1024,
    "rss_extra": (rss_kib() - rss0) * 1024,
    "shape": list(data.shape),
    "type": type(data).__name__,
    "checksum": int(first.astype(np.uint64).sum()),
}))
"""


def _planes(n: int, seed: int = 0):
    """EM-like synthetic planes: smooth blobs plus grain, so compression is realistic (not 1:1, not 100:1)."""
    rng = np.random.default_rng(seed)
    coarse = [np.kron(rng.integers(40, 200, (PLANE // 16, PLANE // 16)), np.ones((16, 16))) for _ in range(8)]
    for z in range(n):
        base = np.roll(coarse[z % 8], shift=z, axis=1)
        grain = rng.integers(0, 24, (PLANE, PLANE))
        yield (base + grain).clip(0, 255).astype(np.uint8)


def _tiles(n: int):
    for plane in _planes(n):
        for y in range(0, PLANE, TILE):
            for x in range(0, PLANE, TILE):
                yield plane[y : y + TILE, x : x + TILE]


def write_files(folder: Path, size_gib: float, tiled: bool) -> list[tuple[str, Path]]:
    n = max(1, int(round(size_gib * 1024**3 / PLANE**2)))
    shape = (n, PLANE, PLANE)
    files = []
    path = folder / "stack_uncompressed.tif"
    t0 = time.perf_counter()
    big = n * PLANE * PLANE >= 4 * 1024**3 - 2**25
    if big:  # ImageJ cannot hold 4 GiB; tifffile's own contiguous BigTIFF instead
        tifffile.imwrite(
            path, _planes(n), shape=shape, dtype=np.uint8, bigtiff=True, metadata={"axes": "ZYX"}
        )
    else:
        tifffile.imwrite(
            path,
            _planes(n),
            shape=shape,
            dtype=np.uint8,
            imagej=True,
            resolution=(0.25, 0.25),
            metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"},
        )
    print(f"wrote {path.name}: {path.stat().st_size / 1024**3:.2f} GiB in {time.perf_counter() - t0:.0f} s")
    files.append(("uncompressed contiguous" + (" BigTIFF" if big else " ImageJ"), path))
    if tiled:
        path = folder / "stack_zstd_tiled.tif"
        t0 = time.perf_counter()
        tifffile.imwrite(
            path,
            _tiles(n),
            shape=shape,
            dtype=np.uint8,
            tile=(TILE, TILE),
            compression="zstd",
            bigtiff=True,
            metadata={"axes": "ZYX"},
            maxworkers=2,
        )
        print(
            f"wrote {path.name}: {path.stat().st_size / 1024**3:.2f} GiB in {time.perf_counter() - t0:.0f} s"
        )
        files.append((f"zstd tiled {TILE}x{TILE} BigTIFF", path))
    return files


def evict(path: Path) -> None:
    """Drop this file's pages from the OS page cache (cold read) without touching anything else."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(reader: str, path: Path, cold: bool) -> dict:
    if cold:
        evict(path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, reader, str(path)], capture_output=True, text=True, timeout=1800
    )
    if out.returncode != 0:
        raise RuntimeError(f"{reader} on {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="stack size in GiB (default 2)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder for the temporary files (default: system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--no-tiled", action="store_true", help="skip the compressed tiled file")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="napari-unet-bench-", dir=args.dir))
    try:
        files = write_files(folder, args.size_gib, tiled=not args.no_tiled)
        rows = []
        for label, path in files:
            for cache in ("cold", "warm"):
                results = {}
                for reader in READERS:
                    if cache == "warm":
                        measure(reader, path, cold=False)  # fill the cache with what this reader touches
                    runs = [measure(reader, path, cold=cache == "cold") for _ in range(args.repeats)]
                    results[reader] = {
                        key: statistics.median(r[key] for r in runs)
                        for key in ("open_s", "first_slice_s", "peak_rss_extra", "rss_extra")
                    } | {"type": runs[0]["type"], "checksum": runs[0]["checksum"]}
                if len({r["checksum"] for r in results.values()}) != 1:
                    raise RuntimeError(f"{path.name}: slice 0 differs between the readers")
                rows.append((label, cache, results))
        report(rows, files, args)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(rows: list, files: list, args: argparse.Namespace) -> None:
    size = sum(p.stat().st_size for _, p in files)
    print()
    print(
        f"stack {args.size_gib:g} GiB uint8 (Z, {PLANE}, {PLANE}); {len(files)} file(s), {size / 1024**3:.2f} GiB on disk"
    )
    print(
        f"median of {args.repeats} fresh processes; time = open + slice 0 as numpy; memory = peak RSS added"
    )
    header = (
        f"{'file':34} {'cache':5} | {'napari-unet':>19} | {'(later file)':>19} | {'napari builtin':>19} |"
        f" {'speed-up':>8} {'memory':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, cache, results in rows:
        cells = [
            f"{r['first_slice_s']:6.3f} s {r['peak_rss_extra'] / 2**20:5.0f} MiB"
            for r in (results[n] for n in READERS)
        ]
        ours, theirs = results["napari-unet"], results["napari builtin"]
        speed = theirs["first_slice_s"] / max(ours["first_slice_s"], 1e-9)
        mem = theirs["peak_rss_extra"] / max(ours["peak_rss_extra"], 1)
        print(
            f"{label:34} {cache:5} | {cells[0]:>19} | {cells[1]:>19} | {cells[2]:>19} | {speed:7.0f}x {mem:6.0f}x"
        )
    print()
    print("speed-up, memory: napari builtin / napari-unet (first file of a session, imports included)")
    for label, cache, results in rows:
        ours = results["napari-unet"]
        print(
            f"napari-unet data for {label} ({cache}): {ours['type']}; reader returned after {ours['open_s']:.3f} s"
        )


if __name__ == "__main__":
    raise SystemExit(main())
