"""Ready for a GPU, checked on a CPU: `vaeinpaint doctor`, why `train.device: auto` chose the
CPU, train.gpus against the visible GPUs, train.compile without its compiler, the process
group's timeout, and the GPU tier collected here and skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from vaeinpaint import doctor as doctor_module
from vaeinpaint.bench import speed as bench
from vaeinpaint.cli import app
from vaeinpaint.console import fails_in_one_line
from vaeinpaint.modeling import device as device_module
from vaeinpaint.modeling import distributed as distributed_module
from vaeinpaint.modeling import toolchain
from vaeinpaint.modeling.device import Driver, device_reason
from vaeinpaint.modeling.train import summary, train_model

from conftest import ROOT, run_env, synthetic_images, tiny_params

CPU = torch.device("cpu")
no_cuda_here = pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without CUDA reports")


# -------------------------------------------------------------------- why not CUDA


@pytest.fixture
def cuda_build(monkeypatch):
    """A torch built for CUDA 12.4 that finds no device; no CUDA_VISIBLE_DEVICES."""
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("visible", "driver", "words"),
    [
        (None, None, "torch is built for CUDA 12.4, but no NVIDIA driver was found"),
        ("", Driver("550.54", (12, 4), 1), "CUDA_VISIBLE_DEVICES='' hides every GPU"),
        ("-1", Driver("550.54", (12, 4), 1), "CUDA_VISIBLE_DEVICES='-1' hides every GPU"),
        (None, Driver("470.82.01", (11, 4), 2), "the NVIDIA driver 470.82.01 runs CUDA up to 11.4, too old for the CUDA 12.4"),
        (None, Driver("550.54", (12, 4), 0), "the NVIDIA driver 550.54 sees no GPU"),
        ("7", Driver("550.54", (12, 4), 2), "CUDA_VISIBLE_DEVICES='7' names none of the 2 GPU(s)"),
    ],
    ids=["no-driver", "visible-empty", "visible-minus-one", "driver-too-old", "no-gpu", "visible-names-none"],
)
def test_auto_says_why_a_cuda_build_trains_on_the_cpu(cuda_build, visible, driver, words):
    if visible is not None:
        cuda_build.setenv("CUDA_VISIBLE_DEVICES", visible)
    cuda_build.setattr(device_module, "nvidia_driver", lambda: driver)
    device = device_module.select_device("auto")
    assert device.type == "cpu"
    assert device_reason("auto", device) == f"auto: {device_module.cuda_unavailable_reason()}"
    assert words in device_reason("auto", device)


def test_a_cpu_only_build_says_so(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_reason("auto", CPU) == f"auto: CPU-only torch build (torch {torch.__version__} has no CUDA)"


def test_a_device_asked_for_or_found_is_its_own_reason(monkeypatch):
    assert device_reason("cpu", CPU) == "train.device: cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_module.select_device("auto").type == "cuda"
    assert device_reason("auto", torch.device("cuda")) == "auto: CUDA is available (2 GPU(s) visible)"


@no_cuda_here
def test_training_on_auto_records_why_it_used_the_cpu(caplog):
    images = synthetic_images(24, 32)
    ids = [f"{i:016x}" for i in range(24)]
    params = tiny_params(train={"device": "auto", "epochs": 1})
    with caplog.at_level("INFO", logger="vaeinpaint.modeling.train"):
        result = train_model(params, images, (images > 128).astype("uint8"), ids)
    reason = device_reason("auto", CPU)
    assert result.device_reason == reason and reason.startswith("auto: ")
    assert summary(result, params, CPU)["device_reason"] == reason  # metrics/train.json
    assert f"train: on cpu ({reason})" in caplog.text
    assert summary(result, params, CPU)["machine"] == device_module.machine_name(CPU)


# ------------------------------------------------------------- which machine computed


def test_the_cpu_model_comes_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R) Platinum 8488C\n")
    assert device_module.cpu_model(str(cpuinfo)) == "Intel(R) Xeon(R) Platinum 8488C"


def test_without_cpuinfo_the_cpu_model_is_what_platform_knows(tmp_path, monkeypatch):
    monkeypatch.setattr(device_module.platform, "processor", lambda: "arm")
    assert device_module.cpu_model(str(tmp_path / "absent")) == "arm"


def test_the_machine_names_the_cpu_and_its_threads_or_the_gpu(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_model", lambda: "Some CPU")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert device_module.machine_name(CPU) == "Some CPU, 3 threads"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert device_module.machine_name(torch.device("cuda", 0)) == "NVIDIA H100 80GB HBM3"
    assert device_module.machine_name(torch.device("cuda", 0), processes=4) == "4 x NVIDIA H100 80GB HBM3"


# -------------------------------------------------------------------------- doctor


@no_cuda_here
def test_doctor_on_this_cpu_machine_names_the_cpu_choice_and_why():
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"torch: {torch.__version__} (")
    assert f"train.device auto: cpu ({device_reason('auto', CPU)})" in lines
    assert any(line.startswith("train.precision auto: ") for line in lines)
    assert any(line.startswith("train.compile: ") for line in lines)
    assert any(line.startswith("GPUs: none usable: ") for line in lines)


def test_doctor_gpu_without_cuda_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ran = []
    monkeypatch.setattr(doctor_module, "run_bounded", lambda *args: ran.append(args))
    result = CliRunner().invoke(app, ["doctor", "--gpu"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: doctor --gpu: the GPU checks need a CUDA device, and none is usable here: ")
    assert result.stderr.count("\n") == 1
    assert result.stdout == "" and ran == []  # nothing started


def test_doctor_gpu_prints_one_line_per_check_and_fails_with_a_failed_check(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(doctor_module, "machine_lines", lambda: ["torch: x"])
    monkeypatch.setattr(doctor_module, "training_lines", lambda: ["train.device auto: cuda (auto: CUDA is available)"])
    tier = "FAILED tests/test_gpu.py::test_trains_on_cuda[bf16] - AssertionError: loss is nan"
    outputs = iter(
        [
            doctor_module.Finished(1, f"....F\n{tier}\n1 failed, 30 passed in 190.2s\n"),
            doctor_module.Finished(
                0, 'table\n{"device": "NVIDIA H100", "train_img_per_s": 41000.5, "train_batch_size": 512, "eval_img_per_s": 90000.0}\n'
            ),
        ]
    )
    commands, limits = [], []

    def fake_run(command, seconds, cwd):
        commands.append(command)
        limits.append(seconds)
        return next(outputs)

    monkeypatch.setattr(doctor_module, "run_bounded", fake_run)
    lines: list[str] = []
    assert doctor_module.run_doctor(True, lines.append) == 1
    assert lines[2] == f"gpu tests: FAILED (1 failed, 30 passed in 190.2s; {tier})"
    assert lines[3] == "bench on cuda: ok (NVIDIA H100: training 41000.5 images/s at batch 512, evaluation 90000.0 images/s)"
    assert commands[0][1:5] == ["-m", "pytest", "-m", "gpu"] and "--device" in commands[1] and "cuda" in commands[1]
    assert sum(limits) <= doctor_module.TOTAL_S < 8 * 60


def test_a_check_that_runs_over_its_time_is_stopped_and_fails(tmp_path):
    done = doctor_module.run_bounded([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 3, tmp_path)
    assert done.returncode is None and "started" in done.output


def test_the_gpu_tier_is_collected_here_and_skipped_without_cuda():
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    ids = [line for line in collected.stdout.splitlines() if line.startswith("tests/test_gpu.py::")]
    assert collected.returncode == 0 and len(ids) >= 15, collected.stdout[-2000:]
    if torch.cuda.is_available():
        return
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert plain.returncode == 0 and f"{len(ids)} skipped" in plain.stdout, plain.stdout[-2000:]


# ------------------------------------------------------------- the train stage's checks


def load_stage():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_stage", ROOT / "stages" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage_here(train: dict) -> object:
    """The train stage as `dvc repro` runs it (params.yaml in the working directory), through
    the one-line error handler; nothing is trained: the checks come first."""
    Path("params.yaml").write_text(yaml.safe_dump({"prepare": {"size": 32}, "train": train}))
    command = typer.Typer()
    command.command()(fails_in_one_line(load_stage().main))
    return CliRunner().invoke(command, [])


def test_train_gpus_beyond_the_visible_gpus_is_one_line_before_launching(project_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    launched = []
    monkeypatch.setattr(distributed_module.subprocess, "run", lambda *args, **kwargs: launched.append(args))
    before = sorted(p.name for p in project_dir.rglob("*"))
    result = run_stage_here({"device": "cuda", "gpus": 2})
    assert result.exit_code == 2 and launched == []  # torchrun never started
    assert result.stderr == (
        "error: train.gpus: 2 processes on CUDA need 2 GPUs on this machine, but 1 is visible (CUDA_VISIBLE_DEVICES='3'); "
        "set train.gpus to at most 1\n"
    )
    assert sorted(p.name for p in project_dir.rglob("*")) == before + ["params.yaml"]


def test_train_gpus_on_the_cpu_are_processes_not_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    distributed_module.check_enough_gpus(tiny_params(train={"device": "cpu", "gpus": 4}).train)  # gloo: no GPU needed


def test_train_compile_without_a_compiler_is_one_line_before_training(project_dir, monkeypatch):
    monkeypatch.setattr(toolchain, "compile_toolchain_problem", lambda device: "a C++ compiler (g++, or set CXX)")
    before = sorted(p.name for p in project_dir.rglob("*"))
    result = run_stage_here({"device": "cpu", "compile": True})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: train.compile: torch.compile builds CPU kernels at run time and needs a C++ compiler")
    assert "set train.compile: false" in result.stderr
    assert sorted(p.name for p in project_dir.rglob("*")) == before + ["params.yaml"]


def test_the_toolchain_check_finds_what_inductor_and_triton_would_use(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler anywhere
    assert toolchain.compiler_for(CPU) is None
    assert "a C++ compiler (g++, or set CXX)" in toolchain.compile_toolchain_problem(CPU)
    gxx = tmp_path / "g++"
    gxx.write_text("#!/bin/sh\n")
    gxx.chmod(0o755)
    assert toolchain.compiler_for(CPU) == str(gxx)
    assert toolchain.compiler_for(torch.device("cuda")) is None  # Triton wants a C compiler: gcc or clang, or CC
    monkeypatch.setenv("CC", str(gxx))
    assert toolchain.compiler_for(torch.device("cuda")) == str(gxx)
    monkeypatch.setattr(toolchain.sysconfig, "get_paths", lambda: {"include": str(tmp_path / "include")})
    assert toolchain.python_headers() is None
    assert toolchain.compile_toolchain_problem(CPU) == f"Python's headers ({tmp_path / 'include'}/Python.h: the python3-dev package)"


def test_the_benchmark_reports_a_missing_toolchain_without_compiling(monkeypatch):
    monkeypatch.setattr(bench, "compile_toolchain_problem", lambda device: "a C++ compiler (g++, or set CXX)")
    monkeypatch.setattr(bench, "measure_training", lambda *args, **kwargs: pytest.fail("nothing is compiled without a compiler"))
    from vaeinpaint.params import Params

    defaults = Params()
    figures = bench.measure_compiled(defaults, defaults.train, CPU, 2, 1)
    assert figures == {"compiled_train_img_per_s": None, "compile_error": "torch.compile needs a C++ compiler (g++, or set CXX)"}


def test_the_process_group_waits_long_enough_for_rank_0s_work(monkeypatch):
    import torch.distributed as tdist

    joined = {}
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(tdist, "init_process_group", lambda **kwargs: joined.update(kwargs))
    monkeypatch.setattr(tdist, "get_rank", lambda: 0)
    monkeypatch.setattr(tdist, "get_world_size", lambda: 2)
    threads = torch.get_num_threads()
    try:
        dist = distributed_module.init_distributed(cuda=False)
    finally:
        torch.set_num_threads(threads)
    assert (dist.rank, dist.world) == (0, 2)
    assert joined == {"backend": "gloo", "timeout": distributed_module.PROCESS_GROUP_TIMEOUT}
    assert distributed_module.PROCESS_GROUP_TIMEOUT.total_seconds() >= 30 * 60  # beyond NCCL's default 10 minutes
