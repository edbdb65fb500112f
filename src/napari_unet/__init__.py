"""napari-unet: train and apply a U-Net on microscopy stacks, in napari or from the command line.

The package root stays light on purpose: it imports neither torch nor Qt, because napari imports plugin
packages when it scans manifests.
"""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-unet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
