"""The GPU tier (`pytest -m gpu`, and the first check of `vaeinpaint doctor --gpu`): training on
CUDA in every configuration, no host sync from one step to the next, streaming equal to
resident, kill -9 and resume, torch.compile, and a one-rank NCCL group through every
collective. Skipped without a CUDA device, so CPU runs and CI skip it; tiny data (the
`conftest` images and params), so the whole tier takes a few minutes on one H100.

On CUDA, cuDNN and cuBLAS are not bitwise deterministic (atomic adds in backward passes), so
two trainings in different processes, or streamed against resident, agree to a float
tolerance, not bit for bit as on the CPU (docs/training.md: CPU and CUDA, what holds where)."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vaeinpaint.data.dataset import SubsetImages
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import epoch as epoch_module  # where the training loop looks up its step and sync point
from vaeinpaint.modeling import train as train_module  # where train_model looks up its epoch
from vaeinpaint.modeling.checkpoint import load_checkpoint
from vaeinpaint.modeling.feed import ResidentFeed, StreamedFeed
from vaeinpaint.modeling.precision import cuda_has_native_bf16, resolve_precision
from vaeinpaint.modeling.toolchain import compile_toolchain_problem
from vaeinpaint.modeling.train import train_model
from vaeinpaint.params import OcclusionParams

from conftest import run_env, synthetic_images, tiny_params

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU tier needs a CUDA device")]

CUDA = torch.device("cuda")
N, SIZE = 96, 32  # 86 training images after the 10% held out: 5 steps of 16 per epoch
TESTS = Path(__file__).resolve().parent


def cuda_params(**blocks):
    """`tiny_params` on CUDA, batches of 16."""
    blocks = copy.deepcopy(blocks)
    return tiny_params(train={"device": "cuda", "batch_size": 16, **blocks.pop("train", {})}, **blocks)


def make_data(n: int = N, size: int = SIZE, colour: bool = False):
    """(uint8 images [n, size, size] or [n, size, size, 3], their stored square masks, ids)."""
    images = synthetic_images(n, size)
    if colour:
        images = np.stack([synthetic_images(n, size, seed=s) for s in range(3)], axis=-1)
    ids = [f"{i:016x}" for i in range(n)]
    return images, occlude(ids, size, OcclusionParams()).masks, ids


@pytest.fixture(scope="module")
def data():
    return make_data()


def finite(result) -> bool:
    return all(math.isfinite(r[key]) for r in result.history for key in ("train_loss", "val_loss"))


def on_cuda(model: torch.nn.Module) -> bool:
    return all(p.device.type == "cuda" for p in model.parameters())


# ----------------------------------------------------------------------- configurations

CONFIGS = {  # name: (params blocks, make_data's arguments)
    "bf16": ({"train": {"precision": "bf16"}}, {}),
    "fp16-with-scaler": ({"train": {"precision": "fp16"}}, {}),
    "fp32": ({"train": {"precision": "fp32"}}, {}),
    "weight-average-off": ({"train": {"ema": 0}}, {}),
    "fixed-masks": ({"train": {"masks": "fixed"}}, {}),
    "several-squares": ({"occlusion": {"count": 3, "ratio": 0.05}}, {}),
    "several-rectangles": ({"occlusion": {"shape": "rectangle", "count": 3, "ratio": 0.05}}, {}),
    "strokes-from-the-bank": ({"occlusion": {"shape": "strokes"}}, {}),
    "mixed": ({"occlusion": {"shape": "mixed"}}, {}),
    "file-masks": ({"occlusion": {"shape": "files", "path": "masks"}}, {}),  # drawn from the stored masks, as the stage does
    "augmentation": ({"train": {"augment": "flip+crop"}}, {}),
    "colour": ({"prepare": {"color": "rgb"}}, {"colour": True}),
    "odd-size": ({"prepare": {"size": 35}}, {"size": 35}),
    "dilated-context": ({"model": {"context": 2, "context_kind": "dilated"}}, {}),
    "fourier-context": ({"model": {"context": 2, "context_kind": "fourier"}}, {}),
    "attention": ({"model": {"attention": True}}, {}),
    "ssim-loss": ({"train": {"ssim_weight": 0.1}}, {}),
    "transpose-head": ({"model": {"head": "transpose"}}, {}),
    # the study's architecture, at its 100 px, with narrow fully connected layers (its 324 M parameters are the benchmark's)
    "paper-arch": ({"model": {"arch": "paper", "fc_width": 64, "latent_dim": 16}, "prepare": {"size": 100}}, {"size": 100}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trains_on_cuda(name, data):
    blocks, data_args = CONFIGS[name]
    params = cuda_params(**blocks)
    if params.train.precision == "bf16" and not cuda_has_native_bf16():
        pytest.skip("train.precision bf16 is refused on a GPU without native bf16 (tested on the CPU)")
    result = train_model(params, *(make_data(**data_args) if data_args else data))
    assert len(result.history) == params.train.epochs and finite(result), result.history
    assert on_cuda(result.model)
    assert result.precision == resolve_precision(CUDA, params.train.precision)
    if result.precision == "fp16":
        assert result.state["scaler"]["scale"] > 0  # the scaler ran and is kept with the model
    assert train_module.summary(result, params, CUDA)["device"] == str(CUDA)


def test_a_time_budget_stops_training_on_cuda(data):
    result = train_model(cuda_params(train={"epochs": 500, "max_minutes": 0.02}), *data)
    assert result.stopped_early and 1 <= len(result.history) < 500 and finite(result)
    assert result.minutes >= 0.02


def test_auto_chooses_cuda_and_says_why(data):
    result = train_model(cuda_params(train={"device": "auto", "epochs": 1}), *data)
    assert on_cuda(result.model) and result.device_reason.startswith("auto: CUDA is available")
    assert train_module.summary(result, tiny_params(), CUDA)["device_reason"] == result.device_reason


# ------------------------------------------------------------------------- host syncs


def fail_on_host_syncs(monkeypatch, warmup: int) -> dict[str, int]:
    """From training step `warmup + 1` on, torch raises on any host sync
    (`torch.cuda.set_sync_debug_mode("error")`) in the steps and everything between them:
    batches, masks, augmentation, the weight average, the schedule. Left out: the sync points
    (`agree`: every 50 steps and at an epoch's end, by design) and what runs between epochs
    (validation, saving). Returns the counts of steps and of checked steps."""
    counts = {"steps": 0, "checked": 0}
    real_step, real_agree, real_epoch = epoch_module.training_step, epoch_module.agree, train_module.train_epoch

    def step(*args, **kwargs):
        counts["steps"] += 1
        if counts["steps"] > warmup:
            counts["checked"] += 1
            torch.cuda.set_sync_debug_mode("error")
        return real_step(*args, **kwargs)

    def agree(*args, **kwargs):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("default")
        try:
            return real_agree(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(mode)

    def epoch(*args, **kwargs):
        try:
            return real_epoch(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(epoch_module, "training_step", step)
    monkeypatch.setattr(epoch_module, "agree", agree)
    monkeypatch.setattr(train_module, "train_epoch", epoch)
    return counts


@pytest.mark.parametrize(
    "blocks",
    [{}, {"train": {"precision": "fp16"}}, {"occlusion": {"shape": "mixed"}}],
    ids=["default", "fp16-with-scaler", "mixed-masks"],
)
def test_no_host_sync_from_one_step_to_the_next(data, monkeypatch, blocks):
    blocks = copy.deepcopy(blocks)
    train = {"epochs": 3, "augment": "flip+crop", **blocks.pop("train", {})}  # 15 steps, 12 of them checked
    counts = fail_on_host_syncs(monkeypatch, warmup=3)
    try:
        result = train_model(cuda_params(train=train, **blocks), *data)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert counts["checked"] >= 10 and finite(result)


# -------------------------------------------------------------------------- streaming


def test_streamed_batches_on_cuda_are_the_resident_ones(tmp_path):
    """Pinned buffers, non-blocking copies and the events that guard their reuse: the same
    batches as the resident set, bit for bit, over several chunks and epochs."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 256, (60, 16, 16, 3), dtype=np.uint8))
    view = SubsetImages(np.load(tmp_path / "images.npy", mmap_mode="r"), rng.permutation(60)[:37])
    masks = rng.integers(0, 2, (37, 16, 16), dtype=np.uint8)
    resident, streamed = ResidentFeed(view, masks, CUDA), StreamedFeed(view, masks, CUDA, chunk_images=10)
    for epoch in range(3):
        order = torch.randperm(37, generator=torch.Generator(device="cuda").manual_seed(epoch), device="cuda")
        pairs = list(zip(resident.batches(order, 5, 7), streamed.batches(order, 5, 7), strict=True))
        assert len(pairs) == 7
        for (ri, rm), (si, sm) in pairs:
            assert si.device.type == CUDA.type and torch.equal(ri, si) and torch.equal(rm, sm)


def test_streamed_training_on_cuda_matches_resident(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # fewer atomics: the two runs differ less
    images, masks, ids = make_data()
    rows = np.random.default_rng(1).permutation(N)
    np.save(tmp_path / "images.npy", images)
    view = SubsetImages(np.load(tmp_path / "images.npy", mmap_mode="r"), rows)
    train = {"epochs": 2, "masks": "fixed", "precision": "fp32"}  # the stored masks travel in the chunks too
    resident = train_model(cuda_params(train=train), images[rows], masks, ids)
    streamed = train_model(cuda_params(train={**train, "resident_fraction": 1e-9}), view, masks, ids)
    assert streamed.streamed and not resident.streamed
    for a, b in zip(streamed.history, resident.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)


# ------------------------------------------------------------------- kill -9 and resume

TRAINING_SCRIPT = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import synthetic_images, tiny_params
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import epoch as epoch_module
from vaeinpaint.modeling.train import train_model
from vaeinpaint.params import OcclusionParams

mode, resume = sys.argv[1], Path(sys.argv[2])
params = tiny_params(train={{"device": "cuda", "epochs": 5, "batch_size": 16, "precision": "fp32"}})
ids = [f"{{i:016x}}" for i in range(96)]
images, masks = synthetic_images(96, 32), occlude(ids, 32, OcclusionParams()).masks
real_step, calls = epoch_module.training_step, [0]

def step(*args, **kwargs):
    calls[0] += 1
    if mode == "victim" and calls[0] == 2 * 5 + 2:  # epoch 3, step 2: the state on disk is epoch 2's
        print("MID-EPOCH 3", flush=True)
        time.sleep(600)  # killed here
    return real_step(*args, **kwargs)

epoch_module.training_step = step
result = train_model(params, images, masks, ids, resume_path=None if mode == "unbroken" else resume,
                     on_epoch=lambda record: print("EPOCH " + json.dumps(record), flush=True))
print("RESULT " + json.dumps({{"history": result.history, "resumed_from_epoch": result.resumed_from_epoch}}), flush=True)
"""


def run_training(script: Path, mode: str, resume: Path) -> dict:
    done = subprocess.run([sys.executable, str(script), mode, str(resume)], env=run_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


def test_kill_9_mid_epoch_then_resume_ends_as_an_unbroken_training(tmp_path):
    script, resume = tmp_path / "train_on_cuda.py", tmp_path / "resume" / "state.pt"
    script.write_text(TRAINING_SCRIPT.format(tests=str(TESTS)))
    victim = subprocess.Popen(
        [sys.executable, str(script), "victim", str(resume)],
        env=run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # not the tier's own stderr: a runner that stops the tier must not wait on this session
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(240, victim.kill)  # a victim that never reaches epoch 3 fails the test instead of hanging it
    watchdog.start()
    lines = []
    for line in victim.stdout:
        lines.append(line)
        if line.startswith("MID-EPOCH"):
            break
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    watchdog.cancel()
    assert lines and lines[-1].startswith("MID-EPOCH"), lines
    assert load_checkpoint(resume)["epoch"] == 2

    resumed = run_training(script, "resume", resume)
    unbroken = run_training(script, "unbroken", resume)
    assert resumed["resumed_from_epoch"] == 2 and len(resumed["history"]) == len(unbroken["history"]) == 5
    before_kill = [json.loads(line[6:]) for line in lines if line.startswith("EPOCH ")]
    # The epochs done before the kill come back from the resume state as the victim logged them.
    assert resumed["history"][:2] == [{k: v for k, v in r.items() if k != "minutes"} for r in before_kill]
    for a, b in zip(resumed["history"], unbroken["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)  # the schedule carried on from the same step


# ------------------------------------------------------------------------ torch.compile


def needs_the_compile_toolchain() -> None:
    problem = compile_toolchain_problem(CUDA)
    if problem:
        pytest.skip(f"torch.compile needs {problem} here (vaeinpaint doctor's train.compile line says so too)")


def test_train_compile_on_cuda(data):
    needs_the_compile_toolchain()
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = train_model(cuda_params(train={"epochs": 2, "compile": True}), *data)
    assert len(result.history) == 2 and finite(result) and on_cuda(result.model)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the step really ran compiled
    assert not any(name.startswith("_orig_mod.") for name in result.state["model"])  # checkpoints keep the plain names


# ------------------------------------------------------------------------ several GPUs

ONE_RANK_NCCL_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
import torch.distributed as tdist
from conftest import synthetic_images, tiny_params
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import distributed, train as train_module
from vaeinpaint.params import OcclusionParams

compile_, store = sys.argv[1] == "compile", sys.argv[2]
torch.cuda.set_device(0)
tdist.init_process_group("nccl", store=tdist.FileStore(store, 1), rank=0, world_size=1, timeout=distributed.PROCESS_GROUP_TIMEOUT)
# The helpers skip a world of one. Told two, over this one-rank group, every collective runs
# over NCCL for real (two ranks cannot share one GPU in NCCL); the data is split as for two.
dist = distributed.Distributed(rank=0, world=2)
out = {{}}
with distributed.process_group(dist):
    x = torch.tensor([1.0, -3.0], dtype=torch.float64, device="cuda")
    out["max"] = distributed.all_max(x.clone(), dist).tolist()
    out["sum"] = distributed.all_sum(x.clone(), dist).tolist()
    out["object"] = distributed.broadcast_object({{"epoch": 3, "weights": torch.arange(3)}}, dist)["epoch"]
    norm = torch.nn.BatchNorm2d(2).cuda()
    norm.running_mean.fill_(0.5)
    distributed.broadcast_buffers(norm, dist)
    out["buffers"] = norm.running_mean.tolist()
    distributed.check_same_everywhere("fingerprint", "configuration", dist)
    wrapped = []
    real_wrap = train_module.wrap_for_training

    def wrap(*args, **kwargs):
        model = real_wrap(*args, **kwargs)
        wrapped.append([type(model).__name__, type(getattr(model, "module", model)).__name__])
        return model

    train_module.wrap_for_training = wrap
    ids = [f"{{i:016x}}" for i in range(96)]
    images, masks = synthetic_images(96, 32), occlude(ids, 32, OcclusionParams()).masks
    params = tiny_params(train={{"device": "cuda", "epochs": 2, "batch_size": 32, "sync_bn": True, "compile": compile_}})
    result = train_module.train_model(params, images, masks, ids, dist=dist)
    out["history"], out["wrapped"] = result.history, wrapped
    out["sync_bn"] = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in result.model.modules())
print("RESULT " + json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("compile_", [False, True], ids=["eager", "compiled"])
def test_one_rank_nccl_group_through_every_collective_ddp_and_sync_bn(tmp_path, compile_):
    if compile_:
        needs_the_compile_toolchain()
    script = tmp_path / "nccl.py"
    script.write_text(ONE_RANK_NCCL_SCRIPT.format(tests=str(TESTS)))
    mode = "compile" if compile_ else "eager"
    done = subprocess.run(
        [sys.executable, str(script), mode, str(tmp_path / "store")], env=run_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["max"] == [1.0, -3.0] and out["sum"] == [1.0, -3.0]  # one rank: the reductions give back what they got
    assert out["object"] == 3 and out["buffers"] == [0.5, 0.5]
    assert out["wrapped"] == [["DistributedDataParallel", "OptimizedModule" if compile_ else "InpaintVAE"]]  # DDP(compile(model))
    assert out["sync_bn"] > 0  # batch norm became SyncBatchNorm
    assert len(out["history"]) == 2 and all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in out["history"])


def test_train_gpus_up_to_the_visible_gpus_and_no_more():
    from vaeinpaint.errors import ParamError
    from vaeinpaint.modeling.distributed import check_enough_gpus

    visible = torch.cuda.device_count()
    check_enough_gpus(tiny_params(train={"device": "cuda", "gpus": visible}).train)
    with pytest.raises(ParamError, match=f"^train.gpus: {visible + 1} processes on CUDA need {visible + 1} GPUs"):
        check_enough_gpus(tiny_params(train={"device": "cuda", "gpus": visible + 1}).train)


# ----------------------------------------------------------------------------- doctor


def test_doctor_on_cuda_names_the_gpus_and_chooses_cuda():
    from vaeinpaint.doctor import run_doctor

    lines: list[str] = []
    assert run_doctor(False, lines.append) == 0
    assert any(line.startswith(f"GPU 0: {torch.cuda.get_device_name(0)}") for line in lines), lines
    assert any(line.startswith("train.device auto: cuda (auto: CUDA is available") for line in lines), lines
    assert f"train.precision auto: {resolve_precision(CUDA, 'auto')}" in "\n".join(lines)
    assert any(line.startswith("NCCL: ") for line in lines)
