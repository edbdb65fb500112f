"""napari sample data (npe2 ``napari_unet._sample_data:em_membranes``); no Qt, no torch.

The files ship inside the package ``napari_unet.sample_data`` (the repository's top-level ``sample_data/``
folder) and are found with :mod:`importlib.resources`, which works from a wheel and an editable install.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.resources import as_file, files
from pathlib import Path

from napari_unet import __version__
from napari_unet._reader import LayerData, layer_data_from_image
from napari_unet.io import read_tiff

__all__ = ["IMAGE_FILE", "LABELS_FILE", "em_membranes", "sample_path"]

IMAGE_FILE = "isbi2012_crop.tif"
LABELS_FILE = "isbi2012_crop_labels.tif"
IMAGE_NAME = "EM membranes (ISBI 2012)"
LABELS_NAME = "EM membranes labels"
CLASS_NAMES = {1: "membrane", 2: "cell interior"}


def sample_path(name: str) -> Path:
    """Return the path of a shipped sample file.

    Parameters
    ----------
    name : str
        File name inside ``napari_unet.sample_data``, e.g. :data:`IMAGE_FILE`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the file is not part of the installation (message says how to rebuild it).
    """
    resource = files("napari_unet.sample_data").joinpath(name)
    if not resource.is_file():
        raise FileNotFoundError(
            f"napari-unet sample file {name!r} is missing from this installation; "
            "rebuild it with `python sample_data/make_sample.py` in the source tree"
        )
    if isinstance(resource, Path):  # wheels and editable installs: a plain file
        return resource
    # zipped installs: copy once to a cache folder that outlives this call (as_file's copy would not)
    target = Path(tempfile.gettempdir()) / f"napari-unet-sample-{__version__}" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with as_file(resource) as real:
            shutil.copyfile(real, target)
    return target


def em_membranes() -> list[LayerData]:
    """Ten 512 x 512 ssTEM slices of the ISBI 2012 challenge with dense labels (1 membrane, 2 cell interior).

    Returns
    -------
    list of (data, kwargs, layer_type)
        An image layer "EM membranes (ISBI 2012)" and a labels layer "EM membranes labels", both
        ``(10, 512, 512)`` uint8 with scale ``(50, 4, 4)`` nm (Z, Y, X).
    """
    layers = []
    for file_name, layer_name in ((IMAGE_FILE, IMAGE_NAME), (LABELS_FILE, LABELS_NAME)):
        (image,) = read_tiff(sample_path(file_name), lazy=False)
        data, kwargs, layer_type = layer_data_from_image(image)
        kwargs["name"] = layer_name
        kwargs["metadata"]["sample"] = "ISBI 2012 EM membranes (non-commercial research use; see README.md)"
        if layer_type == "labels":
            kwargs["metadata"]["class_names"] = dict(CLASS_NAMES)
            kwargs["metadata"]["ground_truth"] = True  # reference labels: Train U-Net never picks them by itself
        layers.append((data, kwargs, layer_type))
    return layers
