"""Type stub for the compiled kernel module ``cnnrs._cnnrs``.

All arrays are C-contiguous numpy arrays; float arrays are float32, class
targets int64, max-pool argmax int32. Outputs are new arrays unless the name
ends in ``_`` or the function is an optimiser step (in place). Invalid arguments
raise subclasses of :class:`cnnrs.errors.CnnrsError`.
"""

from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

__version__: str

def gemm(
    a: F32,
    b: F32,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: Optional[F32] = None,
    bias: Optional[F32] = None,
    relu: bool = False,
) -> F32:
    """out = alpha * op(a) @ op(b) + beta * out (2-D arrays; beta != 0 needs out), then
    out[i, j] += bias[j] and ReLU when asked (a Linear layer in one call)."""

def conv2d_forward(
    x: F32,
    weight: F32,
    bias: Optional[F32] = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    relu: bool = False,
) -> F32:
    """(N, C_in, H, W) * (C_out, C_in/groups, kH, kW) -> (N, C_out, H_out, W_out).
    padding is (top, bottom, left, right)."""

def conv2d_backward(
    x: F32,
    weight: F32,
    grad_output: F32,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    need_input: bool = True,
    need_weight: bool = True,
    need_bias: bool = True,
) -> tuple[Optional[F32], Optional[F32], Optional[F32]]:
    """(grad_input, grad_weight, grad_bias); each None unless asked for."""

def max_pool2d_forward(
    x: F32,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
    relu: bool = False,
) -> tuple[F32, I32]:
    """(y, argmax); argmax is the flat index y*W + x in each input plane, or -1
    where no input gets a gradient (a window that lies entirely in the padding,
    which needs dilation; PyTorch returns an out-of-plane index there).

    Values and argmax equal PyTorch's, NaN included (a NaN in the window wins).
    ``relu=True`` returns ``max_pool(relu(x))``, computed as ``max(max_pool(x), 0)``;
    argmax is -1 where the output is clamped to 0, so max_pool2d_backward gives
    PyTorch's relu -> max_pool gradient (zero where the pooled value <= 0).
    NaN outputs stay NaN and keep their argmax."""

def max_pool2d_backward(
    grad_output: F32,
    argmax: I32,
    input_shape: Sequence[int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> F32: ...
def avg_pool2d_forward(
    x: F32,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> F32: ...
def avg_pool2d_backward(
    grad_output: F32,
    input_shape: Sequence[int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> F32: ...
def relu_forward(x: F32) -> F32: ...
def relu_backward(grad_output: F32, output: F32) -> F32: ...
def bias_add_(y: F32, bias: F32) -> None:
    """y[:, c, ...] += bias[c], in place."""

def batch_norm_forward(
    x: F32,
    weight: Optional[F32] = None,
    bias: Optional[F32] = None,
    mean: Optional[F32] = None,
    var: Optional[F32] = None,
    eps: float = 1e-5,
    relu: bool = False,
) -> tuple[F32, F32, F32, F32]:
    """(y, mean, var, inv_std) of batch norm over all axes but 1 of x (N, C, ...), then ReLU
    if ``relu``.

    Without mean/var the batch statistics are used (var biased); with both, those."""

def batch_norm_backward(
    grad_output: F32,
    x: F32,
    mean: F32,
    inv_std: F32,
    weight: Optional[F32] = None,
    training: bool = True,
    need_input: bool = True,
    relu_output: Optional[F32] = None,
) -> tuple[Optional[F32], F32, F32]:
    """(grad_input or None, grad_weight, grad_bias); training: mean/inv_std were x's own.
    relu_output: the forward ran with relu and returned this (grad_output is its gradient)."""

def cross_entropy(
    logits: F32,
    target: I64,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    need_grad: bool = True,
) -> tuple[F32, Optional[F32]]:
    """(losses (N,), d losses[i] / d logits[i] (N, C) or None)."""

def sgd_step(
    params: Sequence[F32],
    grads: Sequence[F32],
    momentum_buffers: Optional[Sequence[F32]],
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    first_step: bool = False,
) -> None:
    """torch.optim.SGD's update, in place; first_step sets the momentum buffers to the gradient."""

def adam_step(
    params: Sequence[F32],
    grads: Sequence[F32],
    exp_avgs: Sequence[F32],
    exp_avg_sqs: Sequence[F32],
    max_exp_avg_sqs: Optional[Sequence[F32]],
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    maximize: bool = False,
) -> None:
    """torch.optim.Adam (or AdamW with decoupled_weight_decay) update, in place; step counts from 1."""

def set_num_threads(n: int) -> None:
    """Size of the kernel thread pool, 1 <= n <= 256 (ArgumentError otherwise). The
    default is $CNNRS_NUM_THREADS when it is such an integer, else the CPU count.
    Results are bit-identical for any thread count."""

def get_num_threads() -> int: ...
def set_force_fallback(force: bool) -> None: ...
def get_force_fallback() -> bool: ...
def set_winograd(enabled: bool) -> None: ...
def get_winograd() -> bool: ...
def simd_path() -> str:
    """'avx512+avx2+fma' (the GEMM's AVX-512 kernel on CPUs that have it), 'avx2+fma' or 'portable'."""
