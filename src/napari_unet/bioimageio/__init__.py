"""bioimage.io model packages: export a napari-unet checkpoint (spec 0.5) and read such a package back.

``export_package`` needs the optional extra ``napari-unet[bioimageio]`` (bioimageio.spec, bioimageio.core);
reading a package napari-unet exported (``--model model.zip``) needs torch only.
"""

from __future__ import annotations

from ._package import is_package, read_package_checkpoint

__all__ = [
    "ExportResult",
    "bioimageio_available",
    "export_package",
    "is_package",
    "read_package_checkpoint",
    "test_package",
]


def __getattr__(name: str):
    # the exporter imports torch and the model source; keep `import napari_unet.bioimageio` light
    if name in ("ExportResult", "bioimageio_available", "export_package", "test_package"):
        from . import _export

        return getattr(_export, name)
    raise AttributeError(name)
