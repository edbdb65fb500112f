"""The U-Net of Ronneberger, Fischer & Brox (MICCAI 2015), with the geometry the tiler needs.

The network follows the paper: at every resolution level two 3x3 convolutions with ReLU (optionally with
BatchNorm, which the paper predates but which makes training from scratch on a few slices far more forgiving),
2x2 max-pooling on the way down, a 2x2 up-convolution (``ConvTranspose2d``, stride 2) that halves the channels on
the way up, the encoder's feature map centre-cropped and concatenated (the skip connection), and a 1x1 convolution
to ``n_classes`` logits. Softmax over the class axis turns logits into probabilities (binary = 2 classes).

``depth`` counts resolution levels: the paper's network has 5 levels (4 poolings) and 64 features at the top,
which maps a 572 x 572 input onto a 388 x 388 output in ``padding="valid"`` mode. ``padding="same"`` zero-pads
every convolution so output size = input size; the price is that border pixels see zeros instead of context,
which the overlap-tile prediction hides by cropping ``halo`` pixels per side.

Geometry (all per axis, in input pixels), with ``a = 2 ** (depth - 1)``:

* valid sizes: ``n = a * b + 4 * (a - 1)`` for a bottom size ``b`` large enough that every layer stays positive;
  output ``= n - 2 * shrink`` with ``shrink = 6 * a - 4`` (92 for the paper's network).
* same mode: ``n`` divisible by ``a``; output ``= n``.
* receptive field: computed exactly by following intervals back through the network (see
  ``_receptive_field``; 204 px for the paper's network). Pixels of different pooling phases see shifted windows,
  so one output pixel reaches up to ``reach = shrink_valid + a - 1`` pixels on one side; ``halo`` in same mode is
  that reach rounded up to a multiple of ``a`` (56 px at depth 4), so the kept centre of a tile never sees the
  zero padding of the tile border and the image origin stays on the pooling grid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["UNet"]

_PADDINGS = ("valid", "same")


class _DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional BatchNorm and) ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, pad: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            # A bias right before BatchNorm is cancelled by its mean subtraction: drop it.
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            # In place: one activation map less per layer at inference; conv and BN backward need their inputs,
            # not the outputs ReLU overwrites.
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    dy = (x.shape[-2] - height) // 2
    dx = (x.shape[-1] - width) // 2
    return x[..., dy : dy + height, dx : dx + width]


def _receptive_field(depth: int) -> tuple[int, int]:
    """(width, reach): widest receptive field of one output pixel and the farthest it reaches on one side.

    Follows the interval of input pixels one output pixel depends on back through the network (3x3
    convolution: one pixel per side; up-convolution: pixel p comes from p // 2 one level down; pooling: pixel q
    comes from 2q and 2q + 1 one level up; concatenation: union of both branches), for each of the ``2**(depth-1)``
    pooling phases, in same-mode coordinates (valid mode only shifts them). Pooling phases make the windows
    asymmetric, so the reach is larger than half the width: ``shrink_valid + 2**(depth-1) - 1`` per side.
    """

    def encoder(level: int, lo: int, hi: int) -> tuple[int, int]:
        lo, hi = lo - 2, hi + 2  # two 3x3 convolutions
        if level == 0:
            return lo, hi
        return encoder(level - 1, 2 * lo, 2 * hi + 1)  # through the 2x2 pooling

    def decoder(level: int, lo: int, hi: int) -> tuple[int, int]:
        if level == depth - 1:
            return encoder(level, lo, hi)  # the bottom block is a double convolution on the pooled input
        lo, hi = lo - 2, hi + 2  # two 3x3 convolutions on the concatenation
        skip = encoder(level, lo, hi)
        up = decoder(level + 1, lo // 2, hi // 2)
        return min(skip[0], up[0]), max(skip[1], up[1])

    width = reach = 0
    for phase in range(2 ** (depth - 1)):
        lo, hi = decoder(0, phase, phase)
        width = max(width, hi - lo + 1)
        reach = max(reach, phase - lo, hi - phase)
    return width, reach


class UNet(nn.Module):
    """U-Net for 2D semantic segmentation (Ronneberger et al. 2015).

    Parameters
    ----------
    in_channels : int
        Number of image channels (1 for EM).
    n_classes : int
        Number of output classes, >= 2. The network returns logits; apply softmax over axis 1.
    depth : int
        Number of resolution levels (>= 1); ``depth - 1`` poolings. The paper uses 5.
    features : int
        Feature maps at the first level, doubled at every level below. The paper uses 64.
    padding : {"valid", "same"}
        ``"valid"``: unpadded convolutions as in the paper (output smaller than input by ``2 * shrink``, tiles
        stitch exactly). ``"same"``: zero-padded convolutions (output size = input size).
    batch_norm : bool
        Insert BatchNorm after every 3x3 convolution.

    Attributes
    ----------
    kwargs : dict
        Exactly the constructor arguments, to rebuild the model from a checkpoint.
    shrink : int
        Pixels lost per side by the network (0 in same mode).
    halo : int
        Context a tile needs per side so its centre is unaffected by the tile border (== shrink in valid mode).
    receptive_field : int
        Width in pixels of the widest receptive field of one output pixel.
    reach : int
        Farthest input pixel, on one side, that one output pixel depends on (pooling phases make windows
        asymmetric, so ``reach > receptive_field // 2``).
    align : int
        ``2 ** (depth - 1)``: tile origins must be multiples of this for tiles to reproduce the whole-image
        result exactly (same pooling phase).

    Raises
    ------
    ValueError
        On out-of-range arguments.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        depth: int = 4,
        features: int = 32,
        padding: str = "valid",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if int(n_classes) != n_classes or n_classes < 2:
            raise ValueError(
                f"n_classes must be an integer >= 2 (binary segmentation is 2 classes with softmax), "
                f"got {n_classes!r}"
            )
        if int(depth) != depth or not 1 <= depth <= 8:
            raise ValueError(f"depth must be an integer between 1 and 8 (the paper uses 5), got {depth!r}")
        if int(features) != features or features < 1:
            raise ValueError(f"features must be a positive integer (the paper uses 64), got {features!r}")
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        in_channels, n_classes, depth, features = int(in_channels), int(n_classes), int(depth), int(features)
        self.kwargs = {
            "in_channels": in_channels,
            "n_classes": n_classes,
            "depth": depth,
            "features": features,
            "padding": padding,
            "batch_norm": bool(batch_norm),
        }
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        self.features = features
        self.padding = padding
        self.batch_norm = bool(batch_norm)

        pad = 1 if padding == "same" else 0
        widths = [features * 2**level for level in range(depth)]
        self.encoders = nn.ModuleList()
        c_in = in_channels
        for width in widths[:-1]:
            self.encoders.append(_DoubleConv(c_in, width, pad=pad, batch_norm=self.batch_norm))
            c_in = width
        self.pool = nn.MaxPool2d(2)
        self.bottom = _DoubleConv(c_in, widths[-1], pad=pad, batch_norm=self.batch_norm)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            self.ups.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.decoders.append(
                _DoubleConv(2 * widths[level], widths[level], pad=pad, batch_norm=self.batch_norm)
            )
        self.head = nn.Conv2d(widths[0], n_classes, 1)
        self._init_weights()

        a = 2 ** (depth - 1)
        self.align = a
        self.receptive_field, self.reach = _receptive_field(depth)
        if padding == "valid":
            self.shrink = 6 * a - 4
            self.halo = self.shrink
        else:
            self.shrink = 0
            # A tile's kept centre must not see the zeros of the tile border: halo >= reach. Rounded up to a
            # multiple of align so that the mirror padding keeps the image origin on the pooling grid: the tiled
            # result then equals the network applied to the whole image (away from its border), as with any
            # other same-padding inference, instead of a version shifted by a fraction of the pooling grid.
            self.halo = math.ceil(self.reach / a) * a
        self._min_size = self._smallest_valid_size()

    # ----------------------------------------------------------------------------------------------- init
    def _init_weights(self) -> None:
        """He initialisation, as in the paper: N(0, sqrt(2 / N)) with N the inputs of one output unit."""
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                # torch's fan computation takes weight.size(1) (= out channels) as fan-in for transposed
                # convolutions; with stride == kernel each output pixel really sees in_channels inputs.
                std = math.sqrt(2.0 / module.in_channels)
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                if module is self.head:
                    # No ReLU follows the head (softmax does), so the ReLU gain of 2 does not apply.
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------------------------------- geometry
    def _trace(self, n: int) -> int | None:
        """Output side for input side ``n``, or None when some layer would get an odd or empty input."""
        if n < 1:
            return None
        loss = 0 if self.padding == "same" else 4
        for _ in range(self.depth - 1):
            n -= loss
            if n < 2 or n % 2:
                return None
            n //= 2
        n -= loss
        if n < 1:
            return None
        for _ in range(self.depth - 1):
            n = 2 * n - loss
            if n < 1:
                return None
        return n

    def _smallest_valid_size(self) -> int:
        n = 1
        while self._trace(n) is None:
            n += 1
        return n

    def _size_rule(self) -> str:
        a = self.align
        if self.padding == "same":
            return f"a multiple of {a} (2 ** (depth - 1))"
        return f"{a} * k + {4 * (a - 1)} with k >= {(self._min_size - 4 * (a - 1)) // a}"

    def valid_input_size(self, n: int, mode: str = "up") -> int:
        """Nearest input side the network accepts.

        Parameters
        ----------
        n : int
            Wanted side in pixels.
        mode : {"up", "down", "nearest"}
            Round up (never smaller than ``n``), down (never larger, but at least the smallest valid size), or to
            the nearest (ties go up).

        Returns
        -------
        int
            A side ``m`` with ``output_size(m)`` defined.
        """
        if mode not in ("up", "down", "nearest"):
            raise ValueError(f"mode must be 'up', 'down' or 'nearest', got {mode!r}")
        n = int(n)
        if n <= self._min_size:
            return self._min_size
        up = n
        while self._trace(up) is None:
            up += 1
        if mode == "up":
            return up
        down = n
        while self._trace(down) is None:
            down -= 1
        if mode == "down":
            return down
        return down if n - down < up - n else up

    def check_input_size(self, n: int | tuple[int, ...]) -> None:
        """Raise a ValueError naming the numbers when the network cannot take side(s) ``n``.

        Parameters
        ----------
        n : int or tuple of int
            One side, or the spatial shape (e.g. ``(Y, X)``).

        Raises
        ------
        ValueError
            With the rule and the nearest valid sizes below and above.
        """
        sides = (n,) if isinstance(n, (int,)) or not hasattr(n, "__iter__") else tuple(n)
        for side in sides:
            side = int(side)
            if self._trace(side) is None:
                below = self.valid_input_size(side, "down")
                above = self.valid_input_size(side, "up")
                near = f"{above}" if below >= side or below == above else f"{below} or {above}"
                raise ValueError(
                    f"input size {side} is not valid for this U-Net (depth {self.depth}, padding "
                    f"'{self.padding}'): sizes must be {self._size_rule()} (smallest {self._min_size}); "
                    f"nearest valid: {near}"
                )

    def output_size(self, n: int) -> int:
        """Output side for input side ``n`` (``n - 2 * shrink``); ValueError when ``n`` is not valid."""
        self.check_input_size(int(n))
        out = self._trace(int(n))
        assert out is not None
        return out

    @property
    def min_input_size(self) -> int:
        """Smallest input side the network accepts."""
        return self._min_size

    # -------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)``, with ``H`` and ``W`` valid sizes (see ``check_input_size``).

        Returns
        -------
        torch.Tensor
            ``(N, n_classes, H - 2 * shrink, W - 2 * shrink)`` logits.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (N, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}")
        self.check_input_size(tuple(x.shape[-2:]))
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = up(x)
            if self.padding == "valid":
                skip = _center_crop(skip, x.shape[-2], x.shape[-1])
            x = decoder(torch.cat([skip, x], dim=1))
        return self.head(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
