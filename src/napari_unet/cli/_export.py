"""``napari-unet export``: a trained model as a bioimage.io model package (the model zoo's format)."""

from __future__ import annotations

import argparse

from ._common import CLIError, _check_input, _check_output, _command, _load_image

INSTALL_HINT = "pip install 'napari-unet[bioimageio]'"


def cmd_export(args: argparse.Namespace) -> int:
    from ..bioimageio import bioimageio_available

    model_path = _check_input(args.model, "model")
    out = _check_output(args.output, args.overwrite, inputs=[model_path], suffixes=(".zip",), what="package")
    image = None
    if args.image:
        image, _, _ = _load_image(_check_input(args.image, "image"))
    if not bioimageio_available():
        raise CLIError(f"exporting a bioimage.io package needs the bioimageio extra: {INSTALL_HINT}")
    from ..bioimageio import export_package, test_package
    from ..checkpoint import load_checkpoint

    load_checkpoint(model_path)  # a file that is not a napari-unet model is refused before any work
    result = export_package(
        model_path, out, image=image, author=args.author, license_id=args.license, name=args.name
    )
    print(
        f"wrote {out} (bioimage.io model 0.5: pytorch_state_dict + torchscript weights, tiles "
        f"{result.min_size} + n * {result.step} pixels, halo {result.halo}, test tile {result.tile})"
    )
    if args.no_test:
        return 0
    passed, text = test_package(out)
    if not passed:
        failed = [line for line in text.splitlines() if "❌" in line]
        print("\n".join(failed[:10]))
        raise CLIError(f"bioimageio test failed on {out} (see above); please report it")
    print(f"bioimageio test {out}: passed (both weight formats reproduce the test output)")
    return 0


def _add_export(sub, shared: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "export",
        "write a model as a bioimage.io model package (.zip)",
        "The package (spec 0.5) holds PyTorch state-dict weights with the architecture source, TorchScript "
        "weights, axes with the halo overlap-tile prediction needs, the model's normalisation as preprocessing, "
        "test tensors, a cover image and a model card; bioimage.io tools (bioimageio.core, deepImageJ, ilastik) "
        "run it, and napari-unet reads it back with --model. Then runs `bioimageio test` on it. Needs "
        f"{INSTALL_HINT}.",
        "napari-unet export model.pt model.zip\n"
        "napari-unet export model.pt model.zip --image stack.tif --author 'Ada Lovelace'\n"
        "napari-unet predict stack.tif --model model.zip -o labels.tif",
        parents=[shared],
    )
    p.add_argument("model", metavar="MODEL.pt", help="a model saved by napari-unet")
    p.add_argument("output", metavar="OUT.zip", help="the package to write")
    p.add_argument(
        "--image",
        metavar="IMAGE.tif",
        help="image for the test tensors and the cover (its middle slice); default napari-unet's ISBI sample crop",
    )
    p.add_argument("--author", help="author name in the package (default: your user name)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the model (default CC-BY-4.0)")
    p.add_argument("--name", help="model name (default from the file name)")
    p.add_argument("--no-test", action="store_true", help="skip `bioimageio test` after writing")
    p.set_defaults(func=cmd_export)
