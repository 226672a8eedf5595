"""What `train.compile` needs on the machine at run time, checked before anything starts: a
compiler and Python's headers. torch.compile generates its kernels as source and builds them
when the model first runs: on CUDA, Triton builds a small C launcher (C compiler: `$CC`, else
gcc, else clang, Triton's own order); on the CPU, Inductor builds C++ kernels (`$CXX`, else
g++). Both include Python.h. Without them the first step fails after a minute of tracing,
with a traceback that does not name the param; the train stage and the benchmark ask here
first."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import torch

from vaeinpaint.errors import ParamError


def compiler_for(device: torch.device) -> str | None:
    """The compiler torch.compile would build `device`'s kernels with (its path), None if none."""
    if device.type == "cuda":
        named = os.environ.get("CC")
        candidates = [named] if named else ["gcc", "clang"]
    else:
        named = os.environ.get("CXX")
        candidates = [named] if named else ["clang++" if sys.platform == "darwin" else "g++"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def python_headers() -> Path | None:
    """Python.h of this interpreter, None when its development headers are not installed."""
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return header if header.exists() else None


def compile_toolchain_problem(device: torch.device) -> str:
    """What torch.compile lacks here to build kernels for `device`, in words ("" when nothing)."""
    missing = []
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        missing.append("Triton (the triton package that CUDA builds of torch install)")
    if compiler_for(device) is None:
        missing.append("a C compiler (gcc or clang, or set CC)" if device.type == "cuda" else "a C++ compiler (g++, or set CXX)")
    if python_headers() is None:
        missing.append(f"Python's headers ({sysconfig.get_paths()['include']}/Python.h: the python3-dev package)")
    return " and ".join(missing)


def check_compile_toolchain(compile_: bool, device: torch.device) -> None:
    """A one-line error naming `train.compile` when it is on and torch.compile could not build
    its kernels here: before training starts, not a minute into the first step."""
    problem = compile_toolchain_problem(device) if compile_ else ""
    if problem:
        raise ParamError(
            f"train.compile: torch.compile builds {device.type.upper()} kernels at run time and needs {problem}, "
            "missing here; install them (e.g. apt-get install gcc g++ python3-dev) or set train.compile: false"
        )
