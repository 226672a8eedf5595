"""Which device torch computes on: the one choice that training, evaluation, the benchmark and
inference share, so that `train.device: auto` means the same everywhere; and, when `auto`
falls back to the CPU, why (`device_reason`): a GPU machine that trains on its CPU for want
of a driver should say so, not be found out from the speed. And which machine computed
(`machine_name`), so that a figure in metrics/train.json says what hardware it came from."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from vaeinpaint.errors import ParamError
from vaeinpaint.params import DEVICES


def select_device(name: str) -> torch.device:
    """`auto`: CUDA when there is a device, else the CPU; `cuda` without one is a one-line error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device: 'cuda' requested but no CUDA device is available (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def select_device_option(name: str, option: str = "--device") -> torch.device:
    """`select_device` for a command's option (inference, the benchmark): its errors name the
    option typed (`--device tpu: must be one of auto, cpu, cuda`)."""
    if name not in DEVICES:
        raise ParamError(f"{option} {name}: must be one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError(f"{option} cuda: no CUDA device is available (use auto or cpu)")
    return select_device(name)


def device_reason(name: str, device: torch.device) -> str:
    """Why `select_device(name)` gave `device`, in a few words for the log, metrics/train.json
    and `vaeinpaint doctor`."""
    if name != "auto":
        return f"train.device: {name}"
    if device.type == "cuda":
        return f"auto: CUDA is available ({torch.cuda.device_count()} GPU(s) visible)"
    return f"auto: {cuda_unavailable_reason()}"


def machine_name(device: torch.device, processes: int = 1) -> str:
    """The hardware `device` is, in words: the GPU's name on CUDA ("NVIDIA H100 80GB HBM3"),
    else the CPU's model and the threads torch computes with ("Intel(R) Xeon(R) Platinum 8488C,
    2 threads"); `processes` > 1 (distributed training) as "4 x ...". A throughput or a
    training time means little without it."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model()}, {torch.get_num_threads()} threads"
    return f"{processes} x {name}" if processes > 1 else name


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name: Linux's /proc/cpuinfo `model name`, else what `platform` knows."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver as NVML sees it."""

    version: str  # e.g. "580.65.06"
    cuda: tuple[int, int]  # the newest CUDA it runs, e.g. (13, 0)
    gpus: int  # the GPUs it sees (CUDA_VISIBLE_DEVICES does not hide any from NVML)


def nvidia_driver() -> Driver | None:
    """The NVIDIA driver, or None where NVML cannot be loaded or started: no driver installed,
    or a container started without the GPU. NVML (nvidia-ml-py, which MLflow's GPU metrics
    also use) answers without initialising CUDA."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError: library not found, driver not loaded
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # 12040 for CUDA 12.4
        gpus = pynvml.nvmlDeviceGetCount()
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()
    version = version.decode() if isinstance(version, bytes) else str(version)
    return Driver(version, (cuda // 1000, cuda % 1000 // 10), int(gpus))


def _cuda_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor.split(".")[0] or 0)


def cuda_unavailable_reason() -> str:
    """Why torch sees no usable CUDA device here: a CPU-only build, GPUs hidden by
    CUDA_VISIBLE_DEVICES, no NVIDIA driver, a driver older than the CUDA torch was built for,
    or a driver that sees no GPU."""
    built_for = torch.version.cuda
    if built_for is None:
        if getattr(torch.version, "hip", None):  # ROCm builds answer through torch.cuda too
            return f"torch is built for ROCm {torch.version.hip}, but it finds no usable AMD GPU"
        return f"CPU-only torch build (torch {torch.__version__} has no CUDA)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"torch is built for CUDA {built_for}, but CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    driver = nvidia_driver()
    if driver is None:
        return f"torch is built for CUDA {built_for}, but no NVIDIA driver was found: no GPU in this machine or container, or no driver installed"
    if driver.gpus == 0:
        return f"torch is built for CUDA {built_for}, but the NVIDIA driver {driver.version} sees no GPU"
    if driver.cuda[0] < _cuda_version(built_for)[0]:
        return (
            f"the NVIDIA driver {driver.version} runs CUDA up to {driver.cuda[0]}.{driver.cuda[1]}, too old for the CUDA "
            f"{built_for} torch is built for: update the driver, or install a torch built for CUDA {driver.cuda[0]}"
        )
    if visible is not None:
        return f"CUDA_VISIBLE_DEVICES={visible!r} names none of the {driver.gpus} GPU(s) the driver {driver.version} sees"
    return f"CUDA did not start with the NVIDIA driver {driver.version} ({driver.gpus} GPU(s), CUDA {built_for} build)"


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously; a CPU has nothing queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
