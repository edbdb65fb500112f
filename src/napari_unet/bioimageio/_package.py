"""Reading a bioimage.io model package that napari-unet exported, with torch alone (no bioimageio library);
the reading lives in :mod:`napari_unet.checkpoint`, which every model file goes through.

A package written by :func:`napari_unet.bioimageio.export_package` is a zip holding ``rdf.yaml``, the PyTorch
state dict (``weights.pt``), the TorchScript weights, the architecture source, test tensors, a cover, the model
card, and ``napari_unet.json``: the checkpoint's metadata (model kwargs, normalisation, label values, class
names, history). :func:`read_package_checkpoint` rebuilds the napari-unet checkpoint dict from those two files,
loading the weights with ``torch.load(weights_only=True)`` so no code runs; packages from other tools are refused
with a sentence.
"""

from __future__ import annotations

from ..checkpoint import META_NAME, WEIGHTS_NAME, is_package, read_package_checkpoint

__all__ = [
    "META_NAME",
    "WEIGHTS_NAME",
    "is_package",
    "read_package_checkpoint",
]
