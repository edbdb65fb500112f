"""Data augmentation for training patches (numpy / scipy only, no torch).

Every geometric transform is applied to the image and its labels *jointly*, with the same random draw, so the
labels keep describing the pixels under them. Images are ``(Y, X)`` or ``(C, Y, X)`` float32 (already normalised,
roughly 0..1); labels are ``(Y, X)`` integers (any value, including an "ignore" value such as -1, survives because
labels are only ever resampled with nearest-neighbour interpolation).

The elastic deformation follows the U-Net paper (Ronneberger et al. 2015, section 3.1): random displacement vectors
on a coarse 3 x 3 grid, drawn from a Gaussian with about 10 pixels standard deviation, turned into a smooth per-pixel
displacement field by bicubic interpolation. The image is then resampled linearly, the labels with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "AugmentConfig",
    "augment",
    "elastic_deform",
    "elastic_displacement",
    "flip_rot90",
    "intensity_jitter",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations :func:`augment` applies, and how strongly.

    Attributes
    ----------
    flip, rot90 : bool
        Random mirror along Y and X, random multiple of 90 degrees (only 0/180 on non-square patches). Safe for
        EM sections, which have no preferred orientation.
    elastic : bool
        Smooth random deformation (see :func:`elastic_deform`).
    elastic_p : float
        Probability of deforming a given patch; the rest pass undeformed, so the network also sees real geometry.
    elastic_grid : int
        Side of the coarse grid of random displacement vectors (3 in the paper).
    elastic_sigma : float
        Standard deviation of the displacement vectors, in pixels (10 in the paper).
    intensity : bool
        Random gain, offset, gamma, Gaussian noise and slight blur of the image (never of the labels).
    gain, offset, gamma : tuple of float
        Ranges: ``image * gain + offset``, then a gamma (drawn log-uniformly) on the positive part.
    noise : float
        Largest standard deviation of additive Gaussian noise (in normalised units, image range ~0..1).
    blur_p, blur_sigma : float
        Probability and largest sigma (pixels) of a Gaussian blur, for sections imaged slightly out of focus.
    """

    flip: bool = True
    rot90: bool = True
    elastic: bool = True
    elastic_p: float = 0.5
    elastic_grid: int = 3
    elastic_sigma: float = 10.0
    intensity: bool = True
    gain: tuple[float, float] = (0.8, 1.25)
    offset: tuple[float, float] = (-0.1, 0.1)
    gamma: tuple[float, float] = (0.7, 1.4)
    noise: float = 0.04
    blur_p: float = 0.15
    blur_sigma: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.elastic_p <= 1.0 or not 0.0 <= self.blur_p <= 1.0:
            raise ValueError("elastic_p and blur_p are probabilities between 0 and 1")
        if self.elastic_grid < 2:
            raise ValueError(f"elastic_grid must be at least 2 (the paper uses 3), got {self.elastic_grid}")
        if self.elastic_sigma < 0 or self.noise < 0 or self.blur_sigma < 0:
            raise ValueError("elastic_sigma, noise and blur_sigma must not be negative")
        for name in ("gain", "offset", "gamma"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} range must be (low, high), got {(lo, hi)}")
        if self.gain[0] <= 0 or self.gamma[0] <= 0:
            raise ValueError("gain and gamma ranges must be positive")


def _check_pair(image: np.ndarray, labels: np.ndarray | None) -> None:
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image patch of shape (Y, X) or (C, Y, X), got {image.shape}")
    if labels is not None and labels.shape != image.shape[-2:]:
        raise ValueError(f"image and labels shapes differ: image {image.shape}, labels {labels.shape}")


def flip_rot90(
    image: np.ndarray,
    labels: np.ndarray | None,
    rng: np.random.Generator,
    *,
    flip: bool = True,
    rot90: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Randomly mirror and rotate by multiples of 90 degrees, image and labels alike.

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) array
    labels : (Y, X) array or None
    rng : numpy.random.Generator
    flip, rot90 : bool
        Which of the two to draw. Non-square patches are only rotated by 0 or 180 degrees, so shapes never change.

    Returns
    -------
    image, labels
        Contiguous arrays of the input shapes and dtypes.
    """
    _check_pair(image, labels)
    if flip:
        for axis in (-2, -1):
            if rng.random() < 0.5:
                image = np.flip(image, axis)
                labels = None if labels is None else np.flip(labels, axis)
    if rot90:
        square = image.shape[-1] == image.shape[-2]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
        if k:
            image = np.rot90(image, k, axes=(-2, -1))
            labels = None if labels is None else np.rot90(labels, k, axes=(-2, -1))
    # copies only here: views with negative strides cannot go to torch.from_numpy later
    return np.ascontiguousarray(image), None if labels is None else np.ascontiguousarray(labels)


def _cubic_weights(n_points: int, n_pixels: int) -> np.ndarray:
    """(n_pixels, n_points) matrix that evaluates the cubic spline through ``n_points`` values at ``n_pixels``."""
    pos = np.linspace(0, n_points - 1, n_pixels)[None]
    eye = np.eye(n_points)
    return np.stack([ndimage.map_coordinates(e, pos, order=3, mode="nearest") for e in eye], axis=1)


def elastic_displacement(
    shape: tuple[int, int], rng: np.random.Generator, *, grid: int = 3, sigma: float = 10.0
) -> np.ndarray:
    """Smooth random displacement field: Gaussian vectors on a coarse grid, bicubically interpolated.

    Parameters
    ----------
    shape : (Y, X)
        Size of the field.
    rng : numpy.random.Generator
    grid : int
        The coarse grid is ``grid x grid`` control points spanning the patch corner to corner.
    sigma : float
        Standard deviation of each control point's displacement, in pixels.

    Returns
    -------
    (2, Y, X) float32
        Displacement along Y and along X for every pixel.
    """
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    # A 2D cubic spline through grid points is separable: interpolate along Y and along X with two small weight
    # matrices instead of evaluating the spline at every pixel (~10x faster on a 256 x 256 patch). Corner control
    # points sit on the corner pixels.
    wy = _cubic_weights(grid, shape[0])
    wx = _cubic_weights(grid, shape[1])
    field = np.einsum("yi,cij,xj->cyx", wy, coarse, wx)
    return field.astype(np.float32)


def elastic_deform(
    image: np.ndarray,
    labels: np.ndarray | None,
    rng: np.random.Generator,
    *,
    grid: int = 3,
    sigma: float = 10.0,
    image_order: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp image and labels with one random smooth deformation (U-Net paper augmentation).

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) float array
    labels : (Y, X) integer array or None
        Resampled with nearest neighbour, so class values (and an ignore value) are never blended.
    rng : numpy.random.Generator
    grid, sigma : see :func:`elastic_displacement`
    image_order : int
        Spline order for the image: 1 (linear, the default: fast, no overshoot) or 3 (cubic).

    Returns
    -------
    image, labels
        Same shapes and dtypes as the inputs. Pixels pulled from outside the patch are mirrored.
    """
    _check_pair(image, labels)
    ny, nx = image.shape[-2:]
    disp = elastic_displacement((ny, nx), rng, grid=grid, sigma=sigma)
    yy, xx = np.meshgrid(np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij")
    coords = np.stack([yy + disp[0], xx + disp[1]])

    def warp(plane: np.ndarray, order: int) -> np.ndarray:
        return ndimage.map_coordinates(plane, coords, order=order, mode="mirror", prefilter=order > 1)

    if image.ndim == 2:
        out_image = warp(image, image_order)
    else:
        out_image = np.stack([warp(c, image_order) for c in image])
    out_labels = None if labels is None else warp(labels, 0)
    return out_image.astype(image.dtype, copy=False), out_labels


def intensity_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    gain: tuple[float, float] = (0.8, 1.25),
    offset: tuple[float, float] = (-0.1, 0.1),
    gamma: tuple[float, float] = (0.7, 1.4),
    noise: float = 0.04,
    blur_p: float = 0.15,
    blur_sigma: float = 1.0,
) -> np.ndarray:
    """Random contrast changes of a normalised image (labels are unaffected by intensity).

    EM sections differ in staining, thickness and focus from slice to slice; these draws make the network
    indifferent to such changes instead of learning them.

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) float array, normalised to about 0..1
    rng : numpy.random.Generator
    gain, offset : (low, high)
        ``image * gain + offset`` with both drawn uniformly.
    gamma : (low, high)
        Drawn log-uniformly (as many darkening as brightening draws); applied to the positive part only, so
        values below 0 (darker than the 1st percentile) keep their order.
    noise : float
        Gaussian noise with a standard deviation drawn uniformly in ``[0, noise]``.
    blur_p, blur_sigma : float
        With probability ``blur_p``, a Gaussian blur of sigma drawn in ``[0.3, blur_sigma]`` pixels.

    Returns
    -------
    float32 array of the input shape.
    """
    out = np.asarray(image, dtype=np.float32)
    if blur_p > 0 and blur_sigma > 0 and rng.random() < blur_p:
        s = float(rng.uniform(min(0.3, blur_sigma), blur_sigma))
        sig = (0, s, s) if out.ndim == 3 else (s, s)
        out = ndimage.gaussian_filter(out, sig)
    g = float(np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1]))))
    if g != 1.0:
        pos = out > 0
        out = out.copy()
        out[pos] = out[pos] ** g
    out = out * np.float32(rng.uniform(*gain)) + np.float32(rng.uniform(*offset))
    if noise > 0:
        std = float(rng.uniform(0.0, noise))
        out = out + rng.normal(0.0, std, size=out.shape).astype(np.float32)
    return out.astype(np.float32, copy=False)


def augment(
    image: np.ndarray,
    labels: np.ndarray | None,
    rng: np.random.Generator,
    config: AugmentConfig | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the augmentations of ``config`` to one training patch.

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) float array, normalised
    labels : (Y, X) integer array or None
    rng : numpy.random.Generator
        All randomness comes from here, so a seeded generator gives reproducible patches.
    config : AugmentConfig, optional
        Defaults to ``AugmentConfig()``.

    Returns
    -------
    image : float32 array of the input shape
    labels : array of the input shape and dtype, or None
    """
    config = AugmentConfig() if config is None else config
    _check_pair(image, labels)
    image = np.asarray(image, dtype=np.float32)
    if config.elastic and config.elastic_sigma > 0 and rng.random() < config.elastic_p:
        image, labels = elastic_deform(
            image, labels, rng, grid=config.elastic_grid, sigma=config.elastic_sigma
        )
    if config.flip or config.rot90:
        image, labels = flip_rot90(image, labels, rng, flip=config.flip, rot90=config.rot90)
    if config.intensity:
        image = intensity_jitter(
            image,
            rng,
            gain=config.gain,
            offset=config.offset,
            gamma=config.gamma,
            noise=config.noise,
            blur_p=config.blur_p,
            blur_sigma=config.blur_sigma,
        )
    return image, labels
