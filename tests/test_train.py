"""Trainer: schedule, optimizer state without pickle, learning on synthetic data, resume, DDP, eval CLI."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import argparse

from inference_server.cli import train as train_cli
from inference_server.data import load_spec
from inference_server.errors import DataError, T2MError
from inference_server.evaluate import score_items
from inference_server.metrics import retrieval_metrics
from inference_server.retriever import Retriever
from inference_server.train import (DistInfo, TrainOptions, epoch_batches, epoch_order, load_optimizer, lr_factor,
                                    sources_of, save_optimizer, train)

torch.set_num_threads(1)  # on a shared 2-core machine 2 threads spin-wait: 1 is faster and steadier
DATA = "synthetic:64:0"


def test_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 100, 10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] < 0.01


def test_epoch_batches_shard_one_permutation():
    single = np.concatenate(epoch_batches([20], [1.0], 4, seed=1, epoch=0, info=DistInfo()))
    assert sorted(single.tolist()) == list(range(20))
    shards = [np.concatenate(epoch_batches([20], [1.0], 4, 1, 0, DistInfo(rank, 2))) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 10 and not set(shards[0]) & set(shards[1])
    assert not np.array_equal(single, np.concatenate(epoch_batches([20], [1.0], 4, 1, 1, DistInfo())))


def test_epoch_shares_samples_between_sources_by_weight():
    # 10 motions in source A (weight 3), 30 in B (weight 1): 40 samples, 30 of them from A
    order = epoch_order([10, 30], [3.0, 1.0], seed=0, epoch=0)
    assert len(order) == 40
    from_a = order[order < 10]
    assert len(from_a) == 30 and set(from_a.tolist()) == set(range(10))   # A cycled 3 times
    assert np.bincount(from_a).tolist() == [3] * 10
    from_b = order[order >= 10]
    assert len(from_b) == 10 and len(set(from_b.tolist())) == 10         # B: 10 distinct of 30


def test_data_sources_parse_weights():
    assert sources_of("synthetic:10") == [("synthetic:10", 1.0)]
    assert sources_of(["bandai:/d=2", "synthetic:5:0:rich=0.5", "bvh:/a=b"]) == \
        [("bandai:/d", 2.0), ("synthetic:5:0:rich", 0.5), ("bvh:/a=b", 1.0)]
    with pytest.raises(DataError, match="positive"):
        sources_of(["synthetic:10=0"])


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    def make():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
        return net, torch.optim.AdamW(net.parameters(), lr=0.1, betas=(0.8, 0.9))

    def step(net, optimizer, seed):
        optimizer.zero_grad()
        net(torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))).pow(2).sum().backward()
        optimizer.step()

    net, optimizer = make()
    step(net, optimizer, 1)
    save_optimizer(optimizer, tmp_path)
    twin, twin_optimizer = make()
    twin.load_state_dict(net.state_dict())
    load_optimizer(twin_optimizer, tmp_path)
    step(net, optimizer, 2)
    step(twin, twin_optimizer, 2)
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert twin_optimizer.param_groups[0]["betas"] == (0.8, 0.9)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    result = train(TrainOptions(data=DATA, out=str(run), preset="test", epochs=6, batch_size=16,
                                seed=0, progress=False))
    return run, result


@pytest.mark.slow
def test_training_learns_the_training_set(trained_run):
    run, result = trained_run
    assert result["checkpoint"] == str(run / "best") and result["best_val"]["protocol"] == "all"
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == list(range(1, 7))
    assert log[-1]["contrastive"] < log[0]["contrastive"]
    retriever = Retriever.load(run / "last", device="cpu")
    items = load_spec(f"{DATA}@train").items
    metrics = retrieval_metrics(score_items(retriever, items))
    chance_r5 = 100 * 5 / len(items)
    assert metrics["t2m"]["R@5"] > 2 * chance_r5 and metrics["m2t"]["R@5"] > 2 * chance_r5
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["training"]["options"]["data"] == DATA and config["angle_stats"]["std"][0] > 0
    best = max(log, key=lambda entry: entry["val_score"])
    assert config["training"]["epoch"] == best["epoch"]


@pytest.mark.slow
def test_resume_continues_the_run(trained_run, tmp_path):
    run, _ = trained_run
    with pytest.raises(T2MError, match="already holds a run"):
        train(TrainOptions(data=DATA, out=str(run), preset="test", progress=False))
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(run), str(copy)], check=True)
    result = train(TrainOptions(data="ignored", out=str(copy), epochs=7, resume=True, progress=False))
    log = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == list(range(1, 8))
    assert log[-1]["step"] == log[-2]["step"] + (log[-2]["step"] // 6)
    state = json.loads((copy / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 7 and state["options"]["preset"] == "test"
    assert result["epochs"] == 7


def _run_command(argv: list[str]) -> dict:
    """Our commands through their own argparse registration (the other command groups are not needed)."""
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return json.loads(json.dumps(args.handler(args)))


@pytest.mark.slow
def test_eval_command_reports_metrics(trained_run):
    run, _ = trained_run
    out = _run_command(["eval", "--model", str(run / "best"), "--data", f"{DATA}@test", "--json"])
    assert out["protocol"] == "all" and out["data"] == f"{DATA}@test" and out["n"] == 7
    assert set(out["t2m"]) >= {"R@1", "R@5", "R@10", "MedR", "mAP"}


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "inference_server", "train", "--data", "synthetic:40:1", "--out", str(run),
               "--preset", "test", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--ddp",
               "--no-progress", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout   # only rank 0 reports
    result = json.loads(lines[0])
    assert result["checkpoint"] == str(run / "best") and (run / "best" / "model.safetensors").is_file()
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    config = json.loads((run / "last" / "config.json").read_text())
    assert config["training"]["world_size"] == 2
    # each process takes half of every epoch: 2 steps of 8 for ~32 training motions
    assert state["step"] == len(epoch_batches([result["train_motions"]], [1.0], 8, 0, 0, DistInfo(0, 2)))


@pytest.mark.slow
def test_a_weighted_mix_validates_each_source_and_keeps_frozen_layers(tmp_path):
    from inference_server.model.checkpoint import create_checkpoint, load_model
    sources = ["synthetic:40:0=1", "synthetic:40:3:rich=2"]
    result = train(TrainOptions(data=sources, out=str(tmp_path / "run"), preset="test", epochs=1, batch_size=8,
                                pooling="hybrid", mask_stopwords=True, text_trainable_layers=1, progress=False))
    log = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert set(log["val"]) == {"synthetic:40:0", "synthetic:40:3:rich"}
    assert log["val_score"] == pytest.approx(np.mean([0.5 * (m["t2m"]["R@5"] + m["m2t"]["R@5"])
                                                      for m in log["val"].values()]))
    assert set(result["best_val"]) == set(log["val"])
    trained = load_model(tmp_path / "run" / "last")
    assert trained.pooling == "hybrid" and trained.config.mask_stopwords
    fresh = load_model(create_checkpoint(tmp_path / "fresh", preset="test"))
    layers = trained.text.mlm.base_model.encoder.layer
    fresh_layers = fresh.text.mlm.base_model.encoder.layer
    assert torch.equal(layers[0].attention.self.query.weight, fresh_layers[0].attention.self.query.weight)
    assert not torch.equal(layers[-1].attention.self.query.weight, fresh_layers[-1].attention.self.query.weight)


@pytest.mark.slow
def test_bf16_training_on_a_cpu_with_native_bf16(tmp_path):
    options = TrainOptions(data=DATA, out=str(tmp_path / "run"), preset="test", epochs=1, batch_size=16,
                           seed=0, progress=False, precision="bf16")
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        with pytest.raises(T2MError, match="no native bf16"):
            train(options)
        return
    train(options)
    log = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert math.isfinite(log["loss"]) and log["loss"] > 0
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["training"]["options"]["precision"] == "bf16"
    weights = Retriever.load(tmp_path / "run" / "best", device="cpu").model.state_dict()
    assert all(tensor.dtype != torch.bfloat16 for tensor in weights.values())
