"""``export_package``: a napari-unet checkpoint as a bioimage.io model package (spec 0.5, via bioimageio.spec).

The package holds the PyTorch state dict with the architecture source (``napari_unet/model.py`` plus a softmax
wrapper), TorchScript weights, input / output axes with the sizes the U-Net takes and the halo that overlap-tile
prediction crops, the checkpoint's normalisation as ``scale_linear`` preprocessing, test tensors, a cover and
a model card, and ``napari_unet.json`` so napari-unet reads the package back as the same model. bioimageio.spec
is imported here only (the optional extra ``napari-unet[bioimageio]``).
"""

from __future__ import annotations

import dataclasses
import getpass
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .. import model as model_module
from ..checkpoint import load_checkpoint
from ..model import UNet
from ..normalize import apply_normalization
from ._card import model_card, write_cover
from ._package import META_NAME, WEIGHTS_NAME

__all__ = ["ExportResult", "bioimageio_available", "export_package", "test_package"]

ARCHITECTURE_NAME = "napari_unet_model.py"
CALLABLE = "NapariUNetProbabilities"
_WRAPPER = f'''

class {CALLABLE}(UNet):
    """napari-unet's U-Net returning class probabilities: softmax over the channel axis of its logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x), dim=1)
'''
_CITE = (
    "Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015",
    "10.1007/978-3-319-24574-4_28",
)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_package` wrote: the zip, the test tile's side and the halo per side."""

    path: Path
    tile: int
    halo: int
    min_size: int
    step: int


def bioimageio_available() -> bool:
    """True when bioimageio.spec (the ``bioimageio`` extra) is installed."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        return False
    return True


class _Probabilities(UNet):
    """In this process, the class the architecture file defines (same state dict keys as UNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x), dim=1)


def _architecture_source() -> str:
    return inspect.getsource(model_module) + _WRAPPER


def _geometry(model: Any) -> tuple[int, int, int]:
    """``(min, step, halo)``: input sides ``min + n * step``, with ``min`` large enough to keep pixels after the
    halo is cropped (same padding) -- valid padding crops inside the network and documents it as an offset."""
    step = int(model.align)
    if model.padding == "valid":
        return int(model.min_input_size), step, 0
    halo = int(model.halo)
    return int(model.valid_input_size(2 * halo + step, "up")), step, halo


def _test_input(image: np.ndarray | None, in_channels: int, min_size: int, step: int) -> np.ndarray:
    """A ``(1, C, S, S)`` float32 tile of the image (its middle slice, centre crop), ``S = min + n * step``."""
    if image is None:
        from .._sample_data import IMAGE_FILE, sample_path
        from ..io import read_array

        image = np.asarray(read_array(sample_path(IMAGE_FILE))[0])
    image = np.asarray(image, dtype=np.float32)
    plane = image[image.shape[0] // 2] if image.ndim == 3 + (in_channels > 1) else image
    plane = plane if plane.ndim == 3 else plane[None]
    if plane.shape[0] != in_channels:
        raise ValueError(f"the test image has {plane.shape[0]} channel(s); the model takes {in_channels}")
    want = max(min_size, min(plane.shape[-2:]))
    side = min_size + max(0, (min(want, 256) - min_size) // step) * step
    pad = [(0, 0)] + [(0, max(0, side - n)) for n in plane.shape[-2:]]
    plane = np.pad(plane, pad, mode="reflect" if min(plane.shape[-2:]) > 1 else "edge")
    y0, x0 = ((n - side) // 2 for n in plane.shape[-2:])
    return np.ascontiguousarray(plane[None, :, y0 : y0 + side, x0 : x0 + side])


def _scripted(net: torch.nn.Module, example: torch.Tensor, step: int) -> torch.jit.ScriptModule:
    """TorchScript by tracing, checked on a second tile size (the crops must follow the input's shape)."""
    with torch.no_grad(), warnings.catch_warnings():
        # the size checks in forward() become constants of the trace: the second size below proves they hold
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what bioimage.io consumers load
        traced = torch.jit.trace(net, example, check_trace=False)
        other = torch.nn.functional.pad(example, (0, step, 0, step), mode="reflect")
        if not torch.allclose(traced(other), net(other), atol=1e-5):
            raise RuntimeError("the TorchScript trace of the U-Net does not follow the tile size")
    return traced


def _preprocessing(spec: Any, normalization: dict) -> list:
    if normalization.get("mode") == "none":
        return []
    low, high = np.asarray(normalization["low"], float), np.asarray(normalization["high"], float)
    gain, offset = 1.0 / (high - low), -low / (high - low)
    if gain.ndim == 0:
        kwargs = spec.ScaleLinearKwargs(gain=float(gain), offset=float(offset))
    else:
        kwargs = spec.ScaleLinearAlongAxisKwargs(
            axis=spec.AxisId("channel"), gain=gain.tolist(), offset=offset.tolist()
        )
    return [spec.ScaleLinearDescr(kwargs=kwargs)]


def _tensors(spec: Any, meta: dict, files: dict[str, Path], geometry: tuple[int, int, int], shrink: int):
    min_size, step, halo = geometry
    kwargs = meta["model_kwargs"]
    ins = spec.TensorId("raw")
    in_axes = [
        spec.BatchAxis(),
        spec.ChannelAxis(
            channel_names=[spec.Identifier(f"channel{c}") for c in range(kwargs["in_channels"])]
        ),
        *(
            spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=min_size, step=step))
            for a in "yx"
        ),
    ]
    inputs = spec.InputTensorDescr(
        id=ins,
        description="one slice, raw intensities",
        axes=in_axes,
        test_tensor=spec.FileDescr(source=files["test_input"]),
        preprocessing=_preprocessing(spec, meta["normalization"]),
    )

    def space(a: str):
        ref = spec.SizeReference(tensor_id=ins, axis_id=spec.AxisId(a), offset=-2 * shrink)
        if halo:
            return spec.SpaceOutputAxisWithHalo(id=spec.AxisId(a), size=ref, halo=halo)
        return spec.SpaceOutputAxis(id=spec.AxisId(a), size=ref)

    names = [
        f"{value}: {name}"[:128]
        for value, name in zip(meta["label_values"], meta["class_names"], strict=True)
    ]
    outputs = spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description="class probabilities (softmax); the label is the class of highest probability",
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=names), space("y"), space("x")],
        test_tensor=spec.FileDescr(source=files["test_output"]),
    )
    return [inputs], [outputs]


def _write_files(folder: Path, model: Any, meta: dict, test_in: np.ndarray, step: int) -> dict[str, Path]:
    files = {
        "architecture": folder / ARCHITECTURE_NAME,
        "weights": folder / WEIGHTS_NAME,
        "torchscript": folder / "weights_torchscript.pt",
        "test_input": folder / "test_input.npy",
        "test_output": folder / "test_output.npy",
        "cover": folder / "cover.png",
        "meta": folder / META_NAME,
    }
    files["architecture"].write_text(_architecture_source(), encoding="utf-8")
    net = _Probabilities(**meta["model_kwargs"])
    net.load_state_dict(model.state_dict())
    net.eval()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, files["weights"])
    # the package's preprocessing (scale_linear) is the checkpoint's normalisation: the expected output is the
    # network's on the normalised tile
    example = torch.from_numpy(apply_normalization(test_in, meta["normalization"]))
    with torch.no_grad():
        test_out = net(example).numpy()
    _scripted(net, example, step).save(str(files["torchscript"]))
    np.save(files["test_input"], test_in)
    np.save(files["test_output"], test_out)
    shrink = (test_in.shape[-1] - test_out.shape[-1]) // 2
    image = test_in[0, 0, shrink : test_in.shape[-2] - shrink, shrink : test_in.shape[-1] - shrink]
    write_cover(files["cover"], image, test_out[0].argmax(0))
    plain = {k: v for k, v in meta.items() if k != "state_dict"}
    files["meta"].write_text(json.dumps(plain, indent=1, default=str), encoding="utf-8")
    return files


def export_package(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    image: np.ndarray | None = None,
    author: str | None = None,
    license_id: str = "CC-BY-4.0",
    name: str | None = None,
) -> ExportResult:
    """Write a napari-unet checkpoint as a bioimage.io model package (a zip, spec 0.5).

    Parameters
    ----------
    checkpoint : path-like
        A ``.pt`` file written by napari-unet.
    output : path-like
        The ``.zip`` to write (replaced atomically if it exists: the caller checks ``--overwrite``).
    image : numpy.ndarray, optional
        ``(Y, X)`` or ``(Z, Y, X)`` raw image for the test tensors and the cover (its middle slice, centre
        crop); default the ISBI 2012 crop shipped with napari-unet.
    author : str, optional
        Author name in the description (default: the user name).
    license_id : str
        SPDX licence of the model (default CC-BY-4.0).
    name : str, optional
        Model name (default from the checkpoint's file name).

    Returns
    -------
    ExportResult

    Raises
    ------
    ImportError
        Without the ``bioimageio`` extra.
    ValueError
        When bioimageio.spec finds the description invalid (with its reason).
    """
    import bioimageio.spec.model.v0_5 as spec
    from bioimageio.spec import save_bioimageio_package

    checkpoint, output = Path(checkpoint), Path(output)
    model, meta = load_checkpoint(checkpoint)
    geometry = _geometry(model)
    test_in = _test_input(image, model.in_channels, geometry[0], geometry[1])
    name = name or f"napari-unet {checkpoint.stem}"[:128]
    with tempfile.TemporaryDirectory(prefix="napari-unet-export-") as tmp:
        folder = Path(tmp)
        files = _write_files(folder, model, meta, test_in, geometry[1])
        (folder / "README.md").write_text(
            model_card(
                meta,
                name=name,
                source=checkpoint.name,
                license_id=license_id,
                halo=geometry[2],
                in_size=test_in.shape[-1],
            ),
            encoding="utf-8",
        )
        inputs, outputs = _tensors(spec, meta, files, geometry, int(model.shrink))
        version = spec.Version(torch.__version__.split("+")[0])
        weights = spec.WeightsDescr(
            pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                source=files["weights"],
                architecture=spec.ArchitectureFromFileDescr(
                    source=files["architecture"],
                    callable=spec.Identifier(CALLABLE),
                    kwargs=meta["model_kwargs"],
                ),
                pytorch_version=version,
            ),
            torchscript=spec.TorchscriptWeightsDescr(
                source=files["torchscript"], pytorch_version=version, parent="pytorch_state_dict"
            ),
        )
        descr = spec.ModelDescr(
            name=name,
            description=f"U-Net for {len(meta['class_names'])} classes: {', '.join(meta['class_names'])}"[
                :1024
            ],
            authors=[spec.Author(name=author or _user())],
            cite=[spec.CiteEntry(text=_CITE[0], doi=spec.Doi(_CITE[1]))],
            license=license_id,
            documentation=spec.FileDescr(source=folder / "README.md"),
            covers=[spec.FileDescr(source=files["cover"])],
            tags=["napari-unet", "unet", "semantic-segmentation", "electron-microscopy", "2d", "pytorch"],
            inputs=inputs,
            outputs=outputs,
            weights=weights,
            attachments=[spec.FileDescr(source=files["meta"])],
            config={"napari_unet": {"version": __version__, "label_values": list(meta["label_values"])}},
        )
        partial = output.with_name(f".{output.stem}.partial.zip")
        try:
            save_bioimageio_package(descr, output_path=partial)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return ExportResult(output, int(test_in.shape[-1]), geometry[2], geometry[0], geometry[1])


def _user() -> str:
    try:
        return getpass.getuser() or "napari-unet user"
    except Exception:  # no user name in some containers
        return "napari-unet user"


def test_package(path: str | os.PathLike) -> tuple[bool, str]:
    """Run ``bioimageio test`` (bioimageio.core's ``test_model``) on a package: ``(passed, summary text)``."""
    from bioimageio.core import test_model

    summary = test_model(Path(path))
    text = summary.format() if hasattr(summary, "format") else str(summary)
    return summary.status == "passed", text
