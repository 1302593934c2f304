"""Layer cases: conv2d and max-pool, forward and forward+backward, on LeNet-5's and VGG's shapes.

These time the kernel calls themselves: ``cnnrs._cnnrs`` against PyTorch's
ATen ops (``F.conv2d`` / ``aten.convolution_backward``, ``F.max_pool2d`` /
``aten.max_pool2d_with_indices_backward``), with no autograd on either side,
so that the ratio is about kernels. The cost of each library's autograd is
in the whole-network cases.

Work: a convolution's forward is 2*N*C_out*H_out*W_out*C_in*kh*kw flops; its
backward adds as much again for each gradient asked for (input, weight). The
first layer of a network does not need the input gradient, so its backward
skips it on both sides. Pooling counts one op per window element in the
forward and one per output in the backward (memory-bound: read GFLOP/s as a
relative speed only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timing import Case, Contender


@dataclass(frozen=True)
class ConvShape:
    name: str
    batch: int
    c_in: int
    c_out: int
    size: int  # square input
    kernel: int
    padding: int
    first_layer: bool  # no grad-input needed

    @property
    def out_size(self) -> int:
        return self.size + 2 * self.padding - self.kernel + 1

    @property
    def forward_gflop(self) -> float:
        n, k = self.batch, self.kernel
        return 2.0 * n * self.c_out * self.out_size**2 * self.c_in * k * k / 1e9


@dataclass(frozen=True)
class PoolShape:
    name: str
    batch: int
    channels: int
    size: int
    kernel: int = 2

    @property
    def outputs(self) -> int:
        return self.batch * self.channels * (self.size // self.kernel) ** 2


def conv_shapes(quick: bool) -> list[ConvShape]:
    vgg_batch = 16 if quick else 64
    shapes = [
        ConvShape("lenet.conv1", 64, 1, 6, 28, 5, 2, True),
        ConvShape("lenet.conv2", 64, 6, 16, 14, 5, 0, False),
        ConvShape("vgg.conv1 3-64@32", vgg_batch, 3, 64, 32, 3, 1, True),
        ConvShape("vgg.conv2 64-128@16", vgg_batch, 64, 128, 16, 3, 1, False),
        ConvShape("vgg.conv3 128-256@8", vgg_batch, 128, 256, 8, 3, 1, False),
        ConvShape("vgg.conv5 256-512@4", vgg_batch, 256, 512, 4, 3, 1, False),
        ConvShape("vgg.conv7 512-512@2", vgg_batch, 512, 512, 2, 3, 1, False),
    ]
    if quick:
        keep = {"lenet.conv1", "lenet.conv2", "vgg.conv2 64-128@16", "vgg.conv5 256-512@4"}
        shapes = [s for s in shapes if s.name in keep]
    return shapes


def pool_shapes(quick: bool) -> list[PoolShape]:
    vgg_batch = 16 if quick else 64
    shapes = [
        PoolShape("lenet.pool1", 64, 6, 28),
        PoolShape("lenet.pool2", 64, 16, 10),
        PoolShape("vgg.pool1 64@32", vgg_batch, 64, 32),
        PoolShape("vgg.pool2 128@16", vgg_batch, 128, 16),
    ]
    return shapes[:3] if quick else shapes


def _torch_or_missing():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _conv_build(shape: ConvShape, backward: bool):
    def build() -> list[Contender]:
        from cnnrs import _cnnrs

        rng = np.random.default_rng(0)
        x = rng.standard_normal((shape.batch, shape.c_in, shape.size, shape.size), dtype=np.float32)
        w = rng.standard_normal((shape.c_out, shape.c_in, shape.kernel, shape.kernel), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(shape.c_in * shape.kernel**2))
        b = rng.standard_normal(shape.c_out, dtype=np.float32)
        o = shape.out_size
        gy = rng.standard_normal((shape.batch, shape.c_out, o, o), dtype=np.float32)
        p = shape.padding
        pad4 = (p, p, p, p)
        need_input = not shape.first_layer

        def cnnrs_forward():
            return _cnnrs.conv2d_forward(x, w, b, padding=pad4)

        def cnnrs_step():
            y = _cnnrs.conv2d_forward(x, w, b, padding=pad4)
            grads = _cnnrs.conv2d_backward(x, w, gy, padding=pad4, need_input=need_input)
            return y, grads

        contenders = [Contender("cnnrs", cnnrs_step if backward else cnnrs_forward)]
        torch = _torch_or_missing()
        if torch is None:
            return [*contenders, Contender.absent("torch", "torch is not installed")]
        tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
        conv = torch.nn.functional.conv2d
        mask = [need_input, True, True]

        def torch_forward():
            with torch.no_grad():
                return conv(tx, tw, tb, padding=p)

        def torch_step():
            with torch.no_grad():
                y = conv(tx, tw, tb, padding=p)
                grads = torch.ops.aten.convolution_backward(
                    tgy, tx, tw, [shape.c_out], [1, 1], [p, p], [1, 1], False, [0, 0], 1, mask
                )
            return y, grads

        _check_close("conv forward", cnnrs_forward(), torch_forward().numpy())
        if backward:
            ours, theirs = cnnrs_step()[1], torch_step()[1]
            _check_close("conv grad_weight", ours[1], theirs[1].numpy())
            if need_input:
                _check_close("conv grad_input", ours[0], theirs[0].numpy())
        return [*contenders, Contender("torch", torch_step if backward else torch_forward)]

    return build


def _pool_build(shape: PoolShape, backward: bool):
    def build() -> list[Contender]:
        from cnnrs import _cnnrs

        rng = np.random.default_rng(1)
        x = rng.standard_normal((shape.batch, shape.channels, shape.size, shape.size), dtype=np.float32)
        o = shape.size // shape.kernel
        gy = rng.standard_normal((shape.batch, shape.channels, o, o), dtype=np.float32)
        k = (shape.kernel, shape.kernel)

        def cnnrs_forward():
            return _cnnrs.max_pool2d_forward(x, k, k)

        def cnnrs_step():
            y, argmax = _cnnrs.max_pool2d_forward(x, k, k)
            return y, _cnnrs.max_pool2d_backward(gy, argmax, x.shape, k, k)

        contenders = [Contender("cnnrs", cnnrs_step if backward else cnnrs_forward)]
        torch = _torch_or_missing()
        if torch is None:
            return [*contenders, Contender.absent("torch", "torch is not installed")]
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
        F = torch.nn.functional

        def torch_forward():
            with torch.no_grad():
                return F.max_pool2d(tx, shape.kernel)

        def torch_step():
            with torch.no_grad():
                y, indices = F.max_pool2d_with_indices(tx, shape.kernel)
                gx = torch.ops.aten.max_pool2d_with_indices_backward(
                    tgy, tx, list(k), list(k), [0, 0], [1, 1], False, indices
                )
            return y, gx

        _check_close("max_pool forward", cnnrs_forward()[0], torch_forward().numpy())
        if backward:
            _check_close("max_pool backward", cnnrs_step()[1], torch_step()[1].numpy())
        return [*contenders, Contender("torch", torch_step if backward else torch_forward)]

    return build


def _check_close(what: str, ours: np.ndarray, theirs: np.ndarray, tolerance: float = 1e-3) -> None:
    """Refuse to time two libraries that do not compute the same thing."""
    scale = max(1.0, float(np.max(np.abs(theirs))))
    error = float(np.max(np.abs(ours - theirs))) / scale
    if not error <= tolerance:
        raise AssertionError(f"{what}: cnnrs and torch disagree, relative error {error:.2e}")


def cases(quick: bool) -> list[Case]:
    result = []
    for s in conv_shapes(quick):
        backward_gflop = s.forward_gflop * (1 + (0 if s.first_layer else 1))
        tag = f"b{s.batch}"
        result.append(
            Case(f"conv {s.name} {tag} fwd", "layers", "GFLOP/s", s.forward_gflop, _conv_build(s, False))
        )
        result.append(
            Case(
                f"conv {s.name} {tag} fwd+bwd",
                "layers",
                "GFLOP/s",
                s.forward_gflop + backward_gflop,
                _conv_build(s, True),
            )
        )
    for s in pool_shapes(quick):
        forward_gop = s.outputs * s.kernel**2 / 1e9
        tag = f"b{s.batch}"
        result.append(
            Case(f"maxpool {s.name} {tag} fwd", "layers", "GFLOP/s", forward_gop, _pool_build(s, False))
        )
        result.append(
            Case(
                f"maxpool {s.name} {tag} fwd+bwd",
                "layers",
                "GFLOP/s",
                forward_gop + s.outputs / 1e9,
                _pool_build(s, True),
            )
        )
    return result
