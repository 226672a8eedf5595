"""`vaeinpaint doctor [--gpu]`: what this machine offers training, read before a long run.

Plain `doctor` prints torch's build (CUDA, cuDNN), the NVIDIA driver and the GPUs, whether
bf16 is native, which device and precision `train.device: auto` and `train.precision: auto`
would use here and why (the reasons `modeling.device` and `modeling.precision` give the
train stage), and whether `train.compile` has its compiler and headers. It exits 0 on any
machine, a CPU-only one included.

`doctor --gpu` then checks the CUDA path for real, one line per check: the GPU test tier
(`pytest -m gpu`, tests/test_gpu.py) and the quick benchmark on CUDA. It installs nothing,
and the whole of it ends within TOTAL_S (under 8 minutes on one H100): each check runs under
its own cap and what is left of the total, and a check that runs over is stopped and counts
as failed. Without a usable CUDA device it says so in one line and exits 2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vaeinpaint.errors import ParamError
from vaeinpaint.modeling.device import cuda_unavailable_reason, device_reason, nvidia_driver, select_device
from vaeinpaint.modeling.precision import cpu_has_native_bf16, cuda_has_native_bf16, resolve_precision
from vaeinpaint.modeling.toolchain import compile_toolchain_problem, compiler_for, python_headers

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout: src/vaeinpaint/doctor.py -> ., where tests/ is
GPU_TIER_S = 330  # pytest -m gpu: a few minutes on one H100 (estimated: not yet run on one), most of it two torch.compile builds
BENCH_S = 130  # the quick benchmark on CUDA, without compile or prepare
TOTAL_S = 465  # the whole of --gpu, report included: under 8 minutes
TOO_LITTLE_S = 30  # a check left less than this is not started


def cudnn_version() -> str:
    """cuDNN's version as torch reports it (91200 -> 9.12.0; 8902 -> 8.9.2), "none" without it."""
    try:
        raw = torch.backends.cudnn.version()
    except Exception:  # a CUDA build whose cuDNN library cannot be loaded
        raw = None
    if not raw:
        return "none"
    major, rest = (raw // 10000, raw % 10000) if raw >= 90000 else (raw // 1000, raw % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def machine_lines() -> list[str]:
    """torch, the driver, the GPUs (name, memory, compute capability, bf16) and NCCL."""
    built = f"CUDA {torch.version.cuda}, cuDNN {cudnn_version()}" if torch.version.cuda else "CPU-only build"
    lines = [f"torch: {torch.__version__} ({built})"]
    driver = nvidia_driver()
    if driver is None:
        lines.append("NVIDIA driver: none found")
    else:
        lines.append(f"NVIDIA driver: {driver.version} (runs CUDA up to {driver.cuda[0]}.{driver.cuda[1]}; sees {driver.gpus} GPU(s))")
    if not torch.cuda.is_available():
        lines.append(f"GPUs: none usable: {cuda_unavailable_reason()}")
        lines.append(f"bf16 native on this CPU: {'yes' if cpu_has_native_bf16() else 'no'}")
        return lines
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        lines.append(
            f"GPU {index}: {props.name} ({props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor}, "
            f"bf16 native: {'yes' if props.major >= 8 else 'no'})"
        )
    lines.append(f"bf16 native on the GPU training uses: {'yes' if cuda_has_native_bf16() else 'no'}")
    try:
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    except Exception:  # a build without NCCL
        nccl = "not available"
    lines.append(f"NCCL: {nccl}")
    return lines


def precision_reason(device: torch.device, precision: str) -> str:
    """Why `train.precision: auto` resolves to `precision` on `device` (`resolve_precision`'s rule)."""
    if device.type == "cuda":
        return "the GPU computes bf16 natively" if precision == "bf16" else "the GPU has no native bf16: fp16 with loss scaling"
    return "this CPU computes bf16 natively: AVX512-BF16 or AMX" if precision == "bf16" else "this CPU has no native bf16"


def training_lines() -> list[str]:
    """What `auto` would choose for training here, and whether train.compile could build."""
    device = select_device("auto")
    precision = resolve_precision(device, "auto")
    lines = [
        f"train.device auto: {device.type} ({device_reason('auto', device)})",
        f"train.precision auto: {precision} ({precision_reason(device, precision)})",
    ]
    problem = compile_toolchain_problem(device)
    if problem:
        lines.append(f"train.compile: would fail on {device.type}: needs {problem}")
    else:
        lines.append(f"train.compile: ready on {device.type} (compiler {compiler_for(device)}, Python headers {python_headers()})")
    return lines


@dataclass
class Check:
    name: str
    ok: bool
    why: str  # one line: what was measured, or what went wrong

    def line(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAILED'} ({self.why})"


@dataclass
class Finished:
    returncode: int | None  # None: stopped at its time limit
    output: str


def run_bounded(command: list[str], seconds: float, cwd: Path) -> Finished:
    """Run `command` for at most `seconds`, in a session of its own so that a stop also ends
    what it started (pytest's torchrun and subprocess children)."""
    env = {**os.environ, "VAEINPAINT_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=seconds)
        return Finished(process.returncode, output)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a grandchild in a session of its own still holds the pipe
            output = ""
        return Finished(None, output)


def last_line(output: str, pattern: str = r"\S") -> str:
    lines = [line.strip() for line in output.splitlines() if re.search(pattern, line)]
    return lines[-1][:200] if lines else "no output"


def gpu_tier(seconds: float) -> Check:
    """`pytest -m gpu` on the checkout's tests/test_gpu.py (the tier's one file: collecting the
    others would import what they need, e.g. selenium, which a GPU box may lack): ok when
    tests passed and none failed."""
    if not (SOURCE_ROOT / "tests" / "test_gpu.py").exists():
        return Check("gpu tests", False, f"tests/test_gpu.py not found under {SOURCE_ROOT}: run doctor --gpu from a source checkout")
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"]
    done = run_bounded(command, seconds, SOURCE_ROOT)
    summary = last_line(done.output, r"\d+ (passed|failed|error|skipped|deselected)|no tests ran")
    if done.returncode is None:
        return Check("gpu tests", False, f"stopped after {seconds:.0f} s; last: {last_line(done.output)}")
    if "No module named pytest" in done.output:
        return Check("gpu tests", False, "pytest is not installed (pip install -e '.[test]')")
    if done.returncode != 0:
        failed = last_line(done.output, r"^(FAILED|ERROR) ")
        return Check("gpu tests", False, f"{summary}; {failed}" if failed != "no output" else summary)
    return Check("gpu tests", " passed" in summary, summary)  # all skipped is not a pass


def cuda_bench(seconds: float) -> Check:
    """The quick benchmark on CUDA (`vaeinpaint bench --quick --device cuda`, without the
    compile and prepare figures): ok when it ends with its JSON line."""
    command = [sys.executable, "-m", "vaeinpaint.bench", "--quick", "--no-prepare", "--no-compile", "--device", "cuda"]
    done = run_bounded(command, seconds, Path.cwd())
    if done.returncode is None:
        return Check("bench on cuda", False, f"stopped after {seconds:.0f} s; last: {last_line(done.output)}")
    try:
        figures = json.loads(last_line(done.output, r"^\{"))
    except ValueError:
        figures = None
    if done.returncode != 0 or not isinstance(figures, dict):
        return Check("bench on cuda", False, last_line(done.output))
    return Check(
        "bench on cuda",
        True,
        f"{figures['device']}: training {figures['train_img_per_s']} images/s at batch {figures['train_batch_size']}, "
        f"evaluation {figures['eval_img_per_s']} images/s",
    )


def gpu_checks(started: float, echo: Callable[[str], None]) -> bool:
    """Run each check within what is left of TOTAL_S; print its line as it ends. True if all passed."""
    passed = True
    for name, check, cap in (("gpu tests", gpu_tier, GPU_TIER_S), ("bench on cuda", cuda_bench, BENCH_S)):
        left = TOTAL_S - (time.monotonic() - started)
        result = check(min(cap, left)) if left >= TOO_LITTLE_S else Check(name, False, f"not run: {TOTAL_S} s budget spent")
        echo(result.line())
        passed = passed and result.ok
    return passed


def run_doctor(gpu: bool, echo: Callable[[str], None]) -> int:
    """Print the report (and with `gpu` the checks); the exit status."""
    started = time.monotonic()
    if gpu and not torch.cuda.is_available():
        raise ParamError(f"doctor --gpu: the GPU checks need a CUDA device, and none is usable here: {cuda_unavailable_reason()}")
    for line in machine_lines() + training_lines():
        echo(line)
    if not gpu:
        return 0
    return 0 if gpu_checks(started, echo) else 1
