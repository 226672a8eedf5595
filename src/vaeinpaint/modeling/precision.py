"""What a training computes in: bf16, fp16 (with loss scaling) or fp32, per device."""

from __future__ import annotations

import contextlib

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
