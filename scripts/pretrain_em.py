"""Make the EM-pretrained starting model shipped in the wheel (``napari_unet/models/em_pretrained.pt``).

One network, two supervised tasks on real EM, one shared body and a two-logit head per task:

* membranes of ISBI 2012 (ssTEM, Drosophila VNC, 4 x 4 x 50 nm): labels of training slices **10-24 only**;
* mitochondria of the Lucchi volume (FIB-SEM, mouse CA1, ~5 nm): labels of slices **0-129 only**.

Honest data rule: the labels (and images) of ISBI slices 0-9 (the project's sample) and 25-29 (the ISBI figures)
and of Lucchi slices 135-164 (the mitochondria figures) are never read, so every figure the README reports on
them stays held out. Lucchi slices 130-134 (the gap of the project's split) serve as this script's validation.

Fine-tuning (:func:`napari_unet.train.train` with the default start) keeps the body and fits the user's own classes
on a fresh head, so the two pretraining heads never predict anything for a user.

Usage (the shipped model: 25 minutes on a 2-core CPU)::

    python scripts/pretrain_em.py --minutes 25 --out src/napari_unet/models/em_pretrained.pt
    python scripts/pretrain_em.py --tasks membrane --minutes 10 --out membrane_only.pt   # Lucchi left out
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage

from napari_unet.checkpoint import save_checkpoint
from napari_unet.metrics import dice_iou
from napari_unet.model import UNet
from napari_unet.normalize import apply_normalization, normalization_from_image
from napari_unet.predict import predict_stack_sync
from napari_unet.train import segmentation_loss
from napari_unet.transforms import flip_rot90, intensity_jitter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ISBI_TRAIN = range(10, 25)  # never 0-9 (the sample) nor 25-29 (held out)
LUCCHI_TRAIN = range(0, 130)  # never 135-164 (held out)
LUCCHI_VAL = range(130, 135)  # the gap of the project's split
FORBIDDEN = {"isbi": set(range(0, 10)) | set(range(25, 30)), "lucchi": set(range(135, 165))}
HEADS = {"membrane": (0, 1), "mitochondria": (2, 3)}  # logits (background-ish, target) per task


class Task:
    """One data set: normalised slices, binary targets, and a sampler of augmented, rescaled patches."""

    def __init__(self, name: str, images: np.ndarray, targets: np.ndarray, head: int, target_share: float):
        self.name = name
        self.images = images  # (Z, Y, X) float32, normalised
        self.targets = targets  # (Z, Y, X) uint8: 1 = target class
        self.head = head
        self.target_share = target_share
        self.target_pixels = np.argwhere(targets > 0)

    def patch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scale = float(np.exp(rng.uniform(np.log(0.7), np.log(1.45))))  # pixel-size robustness
        window = int(round(size * scale))
        z, ys, xs = self.images.shape
        if rng.random() < self.target_share and len(self.target_pixels):
            cz, cy, cx = self.target_pixels[rng.integers(len(self.target_pixels))]
        else:
            cz, cy, cx = rng.integers(z), rng.integers(ys), rng.integers(xs)
        y0 = int(np.clip(cy - window // 2, 0, ys - window))
        x0 = int(np.clip(cx - window // 2, 0, xs - window))
        img = self.images[cz, y0 : y0 + window, x0 : x0 + window]
        lab = self.targets[cz, y0 : y0 + window, x0 : x0 + window]
        if window != size:
            f = size / window
            img = ndimage.zoom(img, f, order=1, grid_mode=True, mode="reflect")[:size, :size]
            lab = ndimage.zoom(lab, f, order=0, grid_mode=True, mode="nearest")[:size, :size]
        img, lab = flip_rot90(img, lab, rng)
        img = intensity_jitter(img, rng, blur_p=0.25, blur_sigma=1.5, noise=0.06)
        return img, lab


def _read(path: Path, slices: range, corpus: str) -> np.ndarray:
    bad = FORBIDDEN[corpus] & set(slices)
    if bad:
        raise SystemExit(f"refusing to read held-out {corpus} slices {sorted(bad)}")
    with tifffile.TiffFile(path) as tif:
        return np.stack([tif.pages[z].asarray() for z in slices])


def load_tasks(names: list[str]) -> tuple[list[Task], dict]:
    """The tasks asked for (``membrane``: ISBI 10-24; ``mitochondria``: Lucchi 0-129) and their normalisations."""
    tasks, norms = [], {}
    if "membrane" in names:
        isbi_img = _read(DATA / "isbi2012" / "isbi2012_train_images.tif", ISBI_TRAIN, "isbi")
        isbi_lab = _read(DATA / "isbi2012" / "isbi2012_train_labels.tif", ISBI_TRAIN, "isbi")
        norms["isbi"] = normalization_from_image(isbi_img)
        target = (isbi_lab == 0).astype(np.uint8)
        tasks.append(Task("membrane", apply_normalization(isbi_img, norms["isbi"]), target, 0, 0.0))
    if "mitochondria" in names:
        luc_img = _read(DATA / "lucchi" / "lucchi_train_images.tif", LUCCHI_TRAIN, "lucchi")
        luc_lab = _read(DATA / "lucchi" / "lucchi_train_labels.tif", LUCCHI_TRAIN, "lucchi")
        norms["lucchi"] = normalization_from_image(luc_img)
        target = (luc_lab > 0).astype(np.uint8)
        tasks.append(Task("mitochondria", apply_normalization(luc_img, norms["lucchi"]), target, 1, 0.5))
    return tasks, norms


def two_head_loss(logits: torch.Tensor, targets: torch.Tensor, heads: list[int]) -> torch.Tensor:
    """Each patch is scored on its own task's two logits only (target: 0 = background-ish, 1 = target)."""
    losses = []
    for h, pair in enumerate(HEADS.values()):
        rows = [i for i, t in enumerate(heads) if t == h]
        if rows:
            losses.append(segmentation_loss(logits[rows][:, list(pair)], targets[rows], dice_weight=1.0))
    return torch.stack(losses).mean()


def validate(model: UNet, norms: dict) -> dict:
    """Mitochondria IoU on Lucchi slices 130-134 (the split's gap; never trained on, never a README figure)."""
    img = _read(DATA / "lucchi" / "lucchi_train_images.tif", LUCCHI_VAL, "lucchi")
    lab = _read(DATA / "lucchi" / "lucchi_train_labels.tif", LUCCHI_VAL, "lucchi") > 0
    body = UNet(**{**model.kwargs, "n_classes": 2})
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    state["head.weight"] = model.head.weight[list(HEADS["mitochondria"])]
    state["head.bias"] = model.head.bias[list(HEADS["mitochondria"])]
    body.load_state_dict(state)
    meta = {"normalization": norms["lucchi"], "label_values": [0, 1], "class_names": ["other", "mito"]}
    pred = predict_stack_sync(img, body, meta, tile=512, device="cpu").labels == 1
    return {"lucchi_130_134_mito_iou": round(float(dice_iou(pred, lab)[True]["iou"]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="training time (default 30)")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8, help="patches per iteration, half from each task")
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tasks",
        nargs="+",
        choices=list(HEADS),
        default=list(HEADS),
        help="what to pretrain on (default both); '--tasks membrane' leaves Lucchi out, to measure transfer to it",
    )
    ap.add_argument("--out", type=Path, default=Path("src/napari_unet/models/em_pretrained.pt"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tasks, norms = load_tasks(args.tasks)
    print(
        f"data read in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{t.name} {t.images.shape}" for t in tasks)
    )
    model = UNet(
        in_channels=1, n_classes=4, depth=args.depth, features=args.features, padding="same", batch_norm=True
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    seconds, start, it, losses = 60.0 * args.minutes, time.perf_counter(), 0, []
    model.train()
    while True:
        frac = (time.perf_counter() - start) / seconds
        if frac >= 1.0:
            break
        lr = args.lr * (min(1.0, (it + 1) / 100) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac))))
        for group in opt.param_groups:
            group["lr"] = lr
        chosen = [tasks[i % len(tasks)] for i in range(args.batch)]
        heads = [task.head for task in chosen]
        pairs = [task.patch(args.patch, rng) for task in chosen]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
        y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
        loss = two_head_loss(model(x), y, heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        it += 1
        if it % 200 == 0:
            print(
                f"it {it}  loss {np.mean(losses[-200:]):.4f}  lr {lr:.2e}  {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    model.eval()
    # mitochondria IoU on Lucchi 130-134 (read only here): of the trained head, or of no head for transfer runs
    figures = validate(model, norms) if "lucchi" in norms else {}
    elapsed = time.perf_counter() - start
    print(f"{it} iterations in {elapsed / 60:.1f} min; {json.dumps(figures)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        args.out,
        model,
        normalization=norms.get("isbi") or norms["lucchi"],
        label_values=[1, 2, 3, 4],
        class_names=[
            "not membrane (ISBI)",
            "membrane (ISBI)",
            "not mitochondrion (Lucchi)",
            "mitochondrion (Lucchi)",
        ],
        history={"loss": [round(v, 4) for v in losses[::50]]},
        extra={
            "pretrained": {
                "heads": {k: list(v) for k, v in HEADS.items()},
                "tasks": args.tasks,
                "isbi_label_slices": [ISBI_TRAIN.start, ISBI_TRAIN.stop - 1] if "isbi" in norms else [],
                "lucchi_label_slices": [LUCCHI_TRAIN.start, LUCCHI_TRAIN.stop - 1]
                if "lucchi" in norms
                else [],
                "iterations": it,
                "minutes": round(elapsed / 60, 1),
                "patch": args.patch,
                "batch": args.batch,
                "seed": args.seed,
                "figures": figures,
            }
        },
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
