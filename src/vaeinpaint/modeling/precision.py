"""What a training computes in: bf16, fp16 (with loss scaling) or fp32, per device; and the
backend switches that decide what "fp32" means on CUDA.

TF32: on Ampere and later cards cuDNN computes fp32 convolutions with TF32 tensor cores (10
bits of mantissa, not 23) unless told otherwise, and PyTorch's default for them is on. The
switches are therefore set explicitly, never left to the defaults:
- evaluation (`exact_fp32`, around `evaluate.restore`, so every reported metric, the probe's
  included): TF32 off for convolutions and matmuls: the fp32 the documentation promises;
- training (`training_backends`): with bf16 or fp16 autocast, TF32 on: the convolutions and
  matmuls run in bf16/fp16 already, and what autocast leaves in fp32 (the loss, the fp32
  output layer of the `transpose` head, the Fourier blocks' FFT branch) then gets tensor
  cores at a mantissa 3 bits finer than the bf16 around it. With `train.precision: fp32`,
  TF32 off: fp32 asked for is fp32 computed. And cuDNN's autotuner on: every training step
  has the same shapes (only an epoch's last, smaller batch and validation add a few more),
  so it searches once per shape and keeps the fastest algorithm.
On a CPU none of these switches changes anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from vaeinpaint.errors import ParamError


def cuda_has_native_bf16() -> bool:
    """Ampere and later compute bf16 natively; older cards (V100, T4) only emulate it, slowly."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.5 has no emulation switch and reports native support only
        return torch.cuda.is_bf16_supported()


def cpu_has_native_bf16() -> bool:
    """CPUs with AVX512-BF16 or AMX compute bf16 natively (oneDNN reports it)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(device: torch.device, requested: str = "auto") -> str:
    """What `train.precision` means on `device`: "bf16", "fp16" or "fp32". `auto`: bf16 where
    the hardware computes it natively (Ampere+ GPUs; CPUs with AVX512-BF16 or AMX, 1.4x faster
    training measured on one); else fp16 with loss scaling on a GPU, fp32 on a CPU."""
    if device.type == "cuda":
        native = cuda_has_native_bf16()
        if requested == "bf16" and not native:
            raise ParamError("train.precision: bf16 needs a GPU that computes it natively (Ampere or later); use auto, fp16 or fp32")
        if requested == "auto":
            return "bf16" if native else "fp16"
        return requested
    if requested == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return requested


def autocast_for(device: torch.device, precision: str = "auto"):
    """Autocast to bf16 or fp16 (`precision` as in `resolve_precision`), or plain fp32."""
    resolved = resolve_precision(device, precision)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 needs its loss scaled so small gradients do not flush to zero; bf16 and fp32 do not
    (the scaler is then disabled and passes everything through)."""
    return torch.amp.GradScaler(device.type, enabled=resolve_precision(device, precision) == "fp16")


# PyTorch 2.9 and later set TF32 per backend with `fp32_precision`; mixing it with the older
# `allow_tf32` flags makes later reads raise, so the newer switches are used where they exist.
FP32_PRECISION = hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def _tf32() -> tuple:
    """The TF32 switches of cuDNN convolutions and cuBLAS matmuls, as they are set now."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if FP32_PRECISION:
        return cudnn.conv.fp32_precision, matmul.fp32_precision
    return cudnn.allow_tf32, matmul.allow_tf32


def _set_tf32(switches: tuple) -> None:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if FP32_PRECISION:
        cudnn.conv.fp32_precision, matmul.fp32_precision = switches
    else:
        cudnn.allow_tf32, matmul.allow_tf32 = switches


def tf32_switches(on: bool) -> tuple:
    if FP32_PRECISION:
        return ("tf32", "tf32") if on else ("ieee", "ieee")
    return on, on


@contextlib.contextmanager
def backend_flags(cudnn_benchmark: bool, tf32: bool) -> Iterator[None]:
    """cuDNN's autotuner and TF32 (cuDNN convolutions, cuBLAS matmuls) set as given inside the
    block, and put back as they were after it."""
    before = torch.backends.cudnn.benchmark, _tf32()
    torch.backends.cudnn.benchmark = cudnn_benchmark
    _set_tf32(tf32_switches(tf32))
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before[0]
        _set_tf32(before[1])


def training_backends(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The switches a training on `device` in `precision` (resolved) runs under: on CUDA, the
    autotuner on and TF32 only with reduced-precision autocast (see the module's docstring)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return backend_flags(cudnn_benchmark=True, tf32=precision != "fp32")


def exact_fp32() -> contextlib.AbstractContextManager:
    """Full fp32 for the block: TF32 off for convolutions and matmuls (evaluation), the
    autotuner left as it is."""
    return backend_flags(torch.backends.cudnn.benchmark, tf32=False)
