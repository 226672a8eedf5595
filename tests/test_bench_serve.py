"""The load script behind the README's throughput and p95 figures, bounded small: every
request answered, none lost, the counts add up; a non-loopback target is refused."""

from __future__ import annotations

import json

import pytest

from vaeinpaint.bench.serve import main, run_load


def test_two_clients_five_requests_each(tiny_checkpoint, capsys):
    status = main(["--clients", "2", "--requests", "5", "--size", "96", "--checkpoint", str(tiny_checkpoint), "--device", "cpu"])
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert status == 0
    assert (report["sent"], report["answered"], report["ok"], report["errors"], report["lost"]) == (10, 10, 10, 0, 0)
    assert report["throughput_per_s"] > 0 and 0 < report["latency_p50_ms"] <= report["latency_p95_ms"] <= report["latency_max_ms"]


def test_a_missing_model_is_reported_not_timed(tmp_path, capsys):
    assert main(["--clients", "1", "--requests", "1", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt not found" in capsys.readouterr().err


def test_only_loopback_targets():
    with pytest.raises(SystemExit, match="loopback addresses only"):
        run_load("http://192.168.1.10:7860", 1, 1)
