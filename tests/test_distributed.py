"""Several processes on CPU over gloo: the ranks agree on when to stop and on what they log,
and the train stage re-runs itself under torchrun (`train.gpus: 2`)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import queue
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.model import build_model
from vaeinpaint.modeling.train import holdout, inpainting_loss

from conftest import ROOT, TinyProject, run_env, synthetic_images, tiny_params

N = 48
STEPS = (N - 5) // 2 // 4  # 43 training images, 2 processes of 4 images per step: 5 steps per epoch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_data():
    params = tiny_params()
    ids = [f"{i:016x}" for i in range(N)]
    masks = occlude(ids, params.prepare.size, params.occlusion).masks
    return synthetic_images(N, params.prepare.size), masks, ids


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode() + state[key].detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _worker(rank: int, world: int, port: int, scenario: str, train: dict, results) -> None:
    """One DDP process: train the tiny model under `scenario`, put what happened in `results`."""
    from datetime import timedelta
    from types import SimpleNamespace

    import torch.distributed as tdist

    from vaeinpaint.errors import TrainingError
    from vaeinpaint.modeling import epoch as epoch_module  # where the training loop looks up its step and loss
    from vaeinpaint.modeling import schedule as schedule_module
    from vaeinpaint.modeling import train as train_module

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    local_losses: list[float] = []
    val_images: list[int] = []
    real_step, real_loss = epoch_module.training_step, epoch_module.inpainting_loss

    def step(*args, **kwargs):
        loss, recon, kl = real_step(*args, **kwargs)
        local_losses.append(float(loss))
        if scenario == "nan" and rank == 1 and len(local_losses) == STEPS + 2:
            loss = loss * float("nan")  # this process alone sees a NaN first (epoch 2, step 2)
        return loss, recon, kl

    def loss(out, target, *args, **kwargs):
        if not torch.is_grad_enabled():
            val_images.append(int(target.shape[0]))
        return real_loss(out, target, *args, **kwargs)

    epoch_module.training_step, epoch_module.inpainting_loss = step, loss
    if scenario == "budget" and rank == 1:  # this process's clock runs 1000x fast: it reaches the budget first
        schedule_module.time = SimpleNamespace(perf_counter=lambda: time.perf_counter() * 1000)
    outcome: dict = {"rank": rank}
    try:
        result = train_module.train_model(tiny_params(train=train), *tiny_data(), dist=train_module.Distributed(rank, world))
        outcome.update(
            outcome="finished", history=result.history, stopped_early=result.stopped_early, weights=digest(result.model.state_dict())
        )
        if rank == 0:
            # numpy, not tensors: torch shares tensors through memory that dies with this process
            outcome["state"] = {k: v.cpu().numpy() for k, v in result.model.state_dict().items()}
    except TrainingError as exc:
        outcome.update(outcome="TrainingError", message=str(exc))
    except BaseException as exc:  # a hang's timeout, a dead peer: reported, for the test to fail on
        outcome.update(outcome=type(exc).__name__, message=str(exc)[:500])
    per_epoch = [float(np.mean(local_losses[i : i + STEPS])) for i in range(0, len(local_losses) - STEPS + 1, STEPS)]
    outcome.update(local_means=per_epoch, val_images=val_images, finished_at=time.time())
    results.put(outcome)
    tdist.destroy_process_group()


def run_ranks(scenario: str, train: dict, world: int = 2, timeout: float = 120) -> list[dict]:
    """Start `world` processes; return their outcomes by rank. A process that does not report
    within `timeout` (a hang) fails the test."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, world, port, scenario, train, results)) for rank in range(world)]
    for process in processes:
        process.start()
    outcomes = []
    try:
        deadline = time.time() + timeout
        while len(outcomes) < world:
            try:
                outcomes.append(results.get(timeout=max(0.1, deadline - time.time())))
            except queue.Empty:
                pytest.fail(f"{scenario}: only {len(outcomes)} of {world} processes finished within {timeout} s: {outcomes}")
    finally:
        for process in processes:
            process.join(timeout=20)
            if process.is_alive():
                process.kill()
    return sorted(outcomes, key=lambda o: o["rank"])


def test_when_one_rank_reaches_the_time_budget_first_all_stop_after_the_same_epoch():
    outcomes = run_ranks("budget", {"epochs": 6, "max_minutes": 0.5})
    assert [o["outcome"] for o in outcomes] == ["finished", "finished"], outcomes
    assert [len(o["history"]) for o in outcomes] == [1, 1] and all(o["stopped_early"] for o in outcomes)
    assert outcomes[0]["weights"] == outcomes[1]["weights"]  # the same schedule on both: still one model
    assert abs(outcomes[0]["finished_at"] - outcomes[1]["finished_at"]) < 20


def test_when_one_rank_sees_a_nan_first_all_stop_with_the_same_error():
    outcomes = run_ranks("nan", {"epochs": 4})
    assert [o["outcome"] for o in outcomes] == ["TrainingError", "TrainingError"], outcomes
    for o in outcomes:
        assert "epoch 2, step 2" in o["message"] and "last good checkpoint is epoch 1" in o["message"]
    assert "nan" in outcomes[1]["message"]  # the process that saw it says what it saw
    assert abs(outcomes[0]["finished_at"] - outcomes[1]["finished_at"]) < 20


def test_logged_losses_are_the_mean_over_ranks_and_validation_is_sharded():
    outcomes = run_ranks("mean", {"epochs": 2, "precision": "fp32"})
    assert [o["outcome"] for o in outcomes] == ["finished", "finished"], outcomes
    logged, mine, theirs = outcomes[0]["history"], outcomes[0]["local_means"], outcomes[1]["local_means"]
    assert len(logged) == len(mine) == len(theirs) == 2
    for record, a, b in zip(logged, mine, theirs):
        assert abs(a - b) > 1e-4  # the ranks' shards differ, so the mean is not either one
        assert record["train_loss"] == pytest.approx((a + b) / 2, rel=1e-5)
    assert outcomes[0]["weights"] == outcomes[1]["weights"]
    # 5 held-out images: 3 validated on rank 0 and 2 on rank 1, each epoch.
    assert sum(outcomes[0]["val_images"]) == 2 * 3 and sum(outcomes[1]["val_images"]) == 2 * 2
    # The logged validation loss is that of the final model (rank 0's) over all 5.
    images, masks, ids = tiny_data()
    held = np.flatnonzero(holdout(ids, 0.1, 0))
    model = build_model(tiny_params().model)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in outcomes[0]["state"].items()})
    model.eval()
    x = torch.from_numpy(images[held]).unsqueeze(1).float() / 255
    m = torch.from_numpy(masks[held]).unsqueeze(1).float()
    with torch.no_grad():
        out, mu, logvar = model(x * (1 - m), m, sample=False)
    expected, _, _ = inpainting_loss(out, x, m, mu, logvar, tiny_params().train)
    assert logged[-1]["val_loss"] == pytest.approx(float(expected), rel=1e-5)


PARAMS = {
    "data": {"builtin_count": 40},
    "prepare": {"size": 32},
    "split": {"train": 0.8, "test": 0.2},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "gpus": 2},
}


def stage(name, project: TinyProject, **env):
    out = project.run(name, **env)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(tmp_path):
    project = TinyProject(tmp_path).params(PARAMS)
    for name in ("download", "prepare", "split", "occlude"):
        stage(name, project)
    out = stage("train", project, VAEINPAINT_TRACKING="1")
    assert "2 processes under torchrun" in out.stderr
    train = json.loads((tmp_path / "metrics/train.json").read_text())
    assert train["epochs"] == 2 and train["train_loss"] > 0
    assert (tmp_path / "data/model/checkpoint.pt").exists()
    assert not list((tmp_path / ".resume").glob("*.pt"))  # finished: no state left behind

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])
    assert len(runs) == 1  # only rank 0 talks to MLflow
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")] == [1, 2]
    run_id = json.loads((tmp_path / "data/model/run.json").read_text())["run_id"]
    assert run_id == runs[0].info.run_id


def test_torchrun_command_for_one_node_and_for_several(monkeypatch):
    from vaeinpaint.errors import ParamError
    from vaeinpaint.modeling.distributed import torchrun_command

    one = torchrun_command(tiny_params(train={"gpus": 4}).train, "stages/train.py", [])
    assert one[1:] == ["-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone", "stages/train.py"]
    two = tiny_params(train={"gpus": 8, "nodes": 2, "rdzv_endpoint": "node0.cluster:29400"}).train
    monkeypatch.delenv("VAEINPAINT_NODE_RANK", raising=False)
    assert torchrun_command(two, "s.py", [])[3:-1] == [
        "--nproc-per-node=8", "--nnodes=2", "--node-rank=0", "--master-addr=node0.cluster", "--master-port=29400",
    ]  # fmt: skip
    monkeypatch.setenv("VAEINPAINT_NODE_RANK", "1")
    assert "--node-rank=1" in torchrun_command(two, "s.py", [])
    monkeypatch.setenv("VAEINPAINT_NODE_RANK", "2")
    with pytest.raises(ParamError, match="^VAEINPAINT_NODE_RANK: expected a node number from 0 to 1"):
        torchrun_command(two, "s.py", [])


def files_under(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def start_node(folder, node: int):
    return subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "train.py")],
        cwd=folder,
        env=run_env(VAEINPAINT_TRACKING="1", VAEINPAINT_NODE_RANK=str(node)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(processes, timeout: float = 300) -> list[tuple[int, str]]:
    """(exit code, output) of each process; any still running after `timeout` s is killed: a hang fails the test."""
    import os
    import signal

    deadline, results = time.time() + timeout, []
    for process in processes:
        try:
            out, _ = process.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p in processes:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            pytest.fail(f"nodes did not finish within {timeout} s")
        results.append((process.returncode, out))
    return results


@pytest.mark.slow
def test_two_nodes_on_loopback_train_as_one_and_only_node_0_writes(tmp_path):
    # Two "machines": two project copies with the same data, each running the train stage,
    # meeting at 127.0.0.1 as two nodes would at node0:29400.
    params = {**PARAMS, "train": {**PARAMS["train"], "gpus": 1, "nodes": 2, "rdzv_endpoint": f"127.0.0.1:{free_port()}"}}
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    for node in (node0, node1):
        TinyProject(node).params(params)
    for name in ("download", "prepare", "split", "occlude"):
        stage(name, TinyProject(node0))

    # A node with other data is refused by every process before any training.
    import shutil

    shutil.copytree(node0 / "data", node1 / "data")
    masks = np.load(node1 / "data/masks/masks.npz")
    np.savez_compressed(node1 / "data/masks/masks.npz", train=1 - masks["train"], test=masks["test"])
    results = finish([start_node(node0, 0), start_node(node1, 1)])
    for code, out in results:
        assert code != 0 and "would train another configuration" in out, out[-3000:]

    shutil.rmtree(node1 / "data")
    shutil.copytree(node0 / "data", node1 / "data")
    (node1 / "params.yaml").write_text(
        yaml.safe_dump({**params, "train": {**params["train"], "rdzv_endpoint": f"127.0.0.1:{free_port()}"}})
    )
    (node0 / "params.yaml").write_text((node1 / "params.yaml").read_text())
    before = files_under(node1)
    results = finish([start_node(node0, 0), start_node(node1, 1)])
    for code, out in results:
        assert code == 0, out[-4000:]
    assert "on node 0 of 2" in results[0][1] and "on node 1 of 2" in results[1][1]
    train = json.loads((node0 / "metrics/train.json").read_text())
    assert train["epochs"] == 2 and (node0 / "data/model/checkpoint.pt").exists()
    assert files_under(node1) == before  # rank 1 wrote nothing: no outputs, no MLflow store, no resume state

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{node0}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")] == [1, 2]
