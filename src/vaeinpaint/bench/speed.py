"""`vaeinpaint bench [--quick]` (or `python -m vaeinpaint.bench`): how fast, how big, on this machine.

Prints a readable table, then as its last line one JSON object. Every figure is measured
in this run on this device, so figures can be compared as ratios even on a noisy machine:
- training throughput (images/s) of the default model, of it with the previous output head
  (`model.head: transpose`, a transposed conv and a 3x3 conv at full resolution), and of the
  study's architecture
  (`model.arch: paper`), through the pipeline's own step (`EpochSteps.run`, what the
  training loop runs per batch: the masks training draws, augmentation, the optimiser, the
  weight average, the schedule, as the default params set them) on data that lives on the
  device, at the pipeline's batch (`train.batch_size` as training resolves it on this
  device); and of the default model
  on RGB images (`prepare.color: rgb`) beside gray; and of the default model with stroke and
  mixed masks instead of squares (masks from the bank training keeps on the device; drawing
  the bank, once per training, is timed apart); and of the default model with the learned
  prior (`model.prior: learned`: the posterior network and, at the default
  `train.generative_weight`, the decoder's second pass on the prior's mean) beside the standard one. The paper's model is timed at our batch size
  where memory allows (halved until it fits on a GPU; on a CPU a small batch, as it runs ~1
  image/s there), and ours is timed at the paper's batch too, so the speed-up compares equal
  batches;
- evaluation throughput of the default model, after warm-up passes of the same call;
- checkpoint sizes (model + optimizer state) as `torch.save` writes them;
- prepare throughput against a naive PIL loop on 1024x1024 JPEGs (`bench_prepare`).
"""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable

import numpy as np
import torch

from vaeinpaint.errors import one_line
from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.checkpoint import model_config
from vaeinpaint.modeling.device import select_device_option, synchronize
from vaeinpaint.modeling.distributed import Distributed
from vaeinpaint.modeling.epoch import Batches, EpochSteps, epoch_draws
from vaeinpaint.modeling.feed import ResidentFeed
from vaeinpaint.modeling.model import build_model, count_parameters
from vaeinpaint.modeling.precision import autocast_for, exact_fp32, make_scaler, resolve_precision, training_backends
from vaeinpaint.modeling.setup import resolve_batch, resolved, wrap_for_training
from vaeinpaint.modeling.toolchain import compile_toolchain_problem
from vaeinpaint.modeling.train import new_state
from vaeinpaint.params import ModelParams, OcclusionParams, Params, TrainParams, augment_ops

SIZE = 100


class _CountingWriter(io.RawIOBase):
    """A file that only counts the bytes written to it: checkpoint sizes without the disk."""

    def __init__(self):
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)


def measure_training(
    model_params: ModelParams,
    train_params: TrainParams,
    device: torch.device,
    steps: int,
    warmup: int,
    channels: int = 1,
    occlusion: OcclusionParams = OcclusionParams(),
) -> dict:
    """Images/s of the pipeline's training steps (after `warmup` steps) on images of
    `channels` (1 gray, 3 RGB) with `occlusion`'s masks, the checkpoint's size in MB, and the
    seconds it took to set up the masks (the stroke bank).

    Each step is `EpochSteps.run`, the function the training loop runs per batch, on state
    built as `train_model` builds it (`new_state`, `wrap_for_training`, `epoch_draws`): the
    batch gathered from the resident set, its masks drawn (or the stored ones gathered, with
    train.masks: fixed) and augmented as `train_params` say, the optimiser's step, the weight
    average (train.ema), the periodic sync point and the learning rate's schedule, at
    `train_params.batch_size` (auto: resolved as training resolves it)."""
    tp = resolved(train_params, device)
    params = Params().model_copy(update={"model": model_params, "train": tp, "occlusion": occlusion})
    batch, total = tp.batch_size, warmup + steps
    torch.manual_seed(0)
    shape = (batch * total, SIZE, SIZE) + ((channels,) if channels > 1 else ())  # as images.npy stores them: every batch distinct
    images = torch.randint(0, 256, shape, dtype=torch.uint8).numpy()
    stored = np.zeros((len(images), SIZE, SIZE), dtype=np.uint8)
    precision = resolve_precision(device, tp.precision)
    state = new_state(
        params,
        channels,
        model_config(model_params, SIZE, "rgb" if channels == 3 else "gray"),
        device,
        Distributed(),
        total,
        make_scaler(device, precision),
        None,
    )
    model = wrap_for_training(state.model, tp, device, 1)
    started = time.perf_counter()
    masks = TrainingMasks(SIZE, occlusion, seed=tp.seed, device=device, stored=stored)
    synchronize(device)
    mask_setup_s = time.perf_counter() - started
    ops = augment_ops(tp.augment)
    batches = Batches(ResidentFeed(images, stored, device), masks, ops, batch, total)
    draws = epoch_draws(0, tp, masks, torch.arange(len(images), device=device), Distributed(), augmenting=bool(ops))
    epoch = EpochSteps(model, state, batches, draws, 0, tp, autocast_for(device, precision), Distributed())
    feed = enumerate(batches.feed.batches(draws.order, batch, total, tp.masks == "fixed"))
    model.train()

    def step() -> None:
        index, (images_u8, masks_u8) = next(feed)
        epoch.run(index, images_u8, masks_u8)

    with training_backends(device, precision):
        seconds = timed(step, steps, warmup, device)
    generator = masks.for_epoch(1)
    started = time.perf_counter()
    for _ in range(steps):  # the masks alone, to see their share of a step
        masks.draw(batch, generator)
    synchronize(device)
    mask_ms = (time.perf_counter() - started) / steps * 1000
    writer = _CountingWriter()
    torch.save({"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict()}, writer)
    return {
        "img_per_s": steps * batch / seconds,
        "checkpoint_mb": writer.size / 1e6,
        "parameters": count_parameters(state.model),
        "mask_setup_s": mask_setup_s,
        "mask_ms_per_batch": mask_ms,
    }


def timed(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds that `steps` calls of `step` take after `warmup` untimed ones, the device synced
    on both sides (CUDA runs asynchronously)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - started


def largest_batch_that_fits(measure: Callable[[int], dict], batch: int) -> tuple[int, dict]:
    """(batch, measure(batch)) for the largest batch, halving from `batch`, that does not run
    out of GPU memory."""
    while True:
        try:
            return batch, measure(batch)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            gc.collect()
            torch.cuda.empty_cache()


@torch.no_grad()
def measure_eval(model_params: ModelParams, device: torch.device, batch: int, steps: int, warmup: int) -> float:
    """Images/s of evaluation passes (fp32, the latent's mean, as `evaluate.restore` runs),
    after `warmup` passes of the same call: the first ones pay for allocations, oneDNN or
    cuDNN algorithm choices and caches, and would understate steady-state speed."""
    model = build_model(model_params).to(device).to(memory_format=torch.channels_last).eval()
    x = torch.rand(batch, 1, SIZE, SIZE, device=device).contiguous(memory_format=torch.channels_last)
    m = (torch.rand_like(x) < 0.2).float()

    def step() -> None:
        model(x * (1 - m), m, sample=False)

    with exact_fp32():  # as evaluate.restore runs: TF32 off on CUDA
        return steps * batch / timed(step, steps, warmup, device)


def mask_shapes(
    defaults: Params, train_params: TrainParams, device: torch.device, steps: int, warmup: int, squares: float, squares_mask_ms: float
) -> dict:
    """Training images/s of the default model with stroke and mixed masks (20% of the area, as
    the default squares), as ratios to squares' in the same run; the time to draw one batch's
    masks alone for each shape; and the stroke bank's setup time."""
    result = {"mask_ms_per_batch_squares": round(squares_mask_ms, 2)}
    for shape in ("strokes", "mixed"):
        measured = measure_training(
            defaults.model, train_params, device, steps, warmup, occlusion=defaults.occlusion.model_copy(update={"shape": shape})
        )
        result[f"train_img_per_s_{shape}"] = round(measured["img_per_s"], 1)
        result[f"{shape}_vs_squares"] = round(measured["img_per_s"] / squares, 3)
        result[f"mask_ms_per_batch_{shape}"] = round(measured["mask_ms_per_batch"], 2)
        if shape == "strokes":
            result["stroke_bank_s"] = round(measured["mask_setup_s"], 2)
    return result


def measure_compiled(defaults: Params, train_params: TrainParams, device: torch.device, steps: int, warmup: int) -> dict:
    """Training images/s with torch.compile, or None and why not: the toolchain is checked
    first (the check the train stage makes for train.compile), and any other failure is
    reported rather than failing the benchmark."""
    problem = compile_toolchain_problem(device)
    if problem:
        return {"compiled_train_img_per_s": None, "compile_error": f"torch.compile needs {problem}"}
    try:
        compiled = measure_training(defaults.model, train_params.model_copy(update={"compile": True}), device, steps, warmup + 2)
    except Exception as exc:
        return {"compiled_train_img_per_s": None, "compile_error": one_line(exc, 100)}
    return {"compiled_train_img_per_s": round(compiled["img_per_s"], 1)}


def run(
    quick: bool = False, device_name: str = "auto", compile_check: bool | None = None, prepare: bool = True, batch_size: int = 0
) -> dict:
    """All figures for `device_name`. `compile_check` (default: not in quick mode) also times
    torch.compile, whose first steps compile for a minute or more."""
    device = select_device_option(device_name, "--device")
    defaults = Params()  # the shipped params.yaml's model and training settings (a test keeps them equal)
    cpu = device.type == "cpu"
    steps, warmup = (5, 2) if quick else (20, 3)
    if not cpu:
        steps, warmup = (20, 5) if quick else (100, 10)
    # The pipeline's batch: train.batch_size as training resolves it on this device (auto: 32
    # on a CPU, 256 on CUDA), unless told otherwise.
    batch_size = batch_size or resolve_batch(defaults.train, device)[0]
    ours_train = defaults.train.model_copy(update={"batch_size": batch_size})
    ours = measure_training(defaults.model, ours_train, device, steps, warmup)
    colour = measure_training(defaults.model, ours_train, device, steps, warmup, channels=3)
    transpose_head = measure_training(defaults.model.model_copy(update={"head": "transpose"}), ours_train, device, steps, warmup)
    learned = measure_training(defaults.model.model_copy(update={"prior": "learned"}), ours_train, device, steps, warmup)

    paper_steps = ((1, 1) if quick else (3, 1)) if cpu else (steps, warmup)

    def paper_at(batch: int) -> dict:
        return measure_training(
            defaults.model.model_copy(update={"arch": "paper"}),
            defaults.train.model_copy(update={"batch_size": batch}),
            device,
            *paper_steps,
        )

    if cpu:  # ~1 image/s on a CPU: a few images are enough to time it, and our batch would take minutes
        paper_batch = min(batch_size, 4 if quick else 8)
        paper = paper_at(paper_batch)
    else:  # our batch where memory allows, else the largest that fits
        paper_batch, paper = largest_batch_that_fits(paper_at, batch_size)
    eval_steps = ((3, 2) if quick else (10, 3)) if cpu else (50, 10)  # timed passes, warm-up passes
    same_batch = ours
    if paper_batch != batch_size:  # ours at the paper's batch too: the speed-up compares equal batches
        same_batch = measure_training(defaults.model, ours_train.model_copy(update={"batch_size": paper_batch}), device, steps, warmup)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_batch_size": batch_size,
        "train_img_per_s": round(ours["img_per_s"], 1),
        "rgb_train_img_per_s": round(colour["img_per_s"], 1),
        "rgb_vs_gray_train": round(colour["img_per_s"] / ours["img_per_s"], 3),
        "train_img_per_s_transpose_head": round(transpose_head["img_per_s"], 1),
        "shuffle_vs_transpose_head": round(ours["img_per_s"] / transpose_head["img_per_s"], 3),
        "train_img_per_s_learned_prior": round(learned["img_per_s"], 1),
        "learned_vs_standard_prior": round(learned["img_per_s"] / ours["img_per_s"], 3),
        "learned_prior_parameters": learned["parameters"],
        "paper_batch_size": paper_batch,
        "paper_train_img_per_s": round(paper["img_per_s"], 2),
        "train_img_per_s_at_paper_batch": round(same_batch["img_per_s"], 1),
        "train_speedup_vs_paper": round(same_batch["img_per_s"] / paper["img_per_s"], 1),  # at the same batch
        "eval_img_per_s": round(measure_eval(defaults.model, device, 256, *eval_steps), 1),
        **mask_shapes(defaults, ours_train, device, steps, warmup, ours["img_per_s"], ours["mask_ms_per_batch"]),
        "checkpoint_mb": round(ours["checkpoint_mb"], 2),
        "paper_checkpoint_mb": round(paper["checkpoint_mb"], 1),
        "parameters": ours["parameters"],
        "paper_parameters": paper["parameters"],
    }
    if compile_check if compile_check is not None else not quick:
        result.update(measure_compiled(defaults, ours_train, device, steps, warmup))
    if prepare:
        from vaeinpaint.bench.prepare import bench_prepare

        result.update(bench_prepare(quick=quick))
    return result


def table(result: dict) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in result.items())
