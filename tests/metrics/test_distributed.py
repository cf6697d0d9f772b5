"""Metric states are summed across processes: 2 gloo processes equal 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpcl.metrics import LDLMetrics

WORKER = Path(__file__).with_name("ddp_metrics_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_metrics_equal_one_process(tmp_path):
    generator = torch.Generator().manual_seed(0)
    target = torch.softmax(torch.randn(101, 10, generator=generator, dtype=torch.float64), 1)
    preds = torch.softmax(torch.randn(101, 10, generator=generator, dtype=torch.float64), 1)
    data = tmp_path / "data.pt"
    torch.save({"preds": preds, "target": target}, data)

    port = _free_port()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "PYTHONPATH": str(REPO),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(data)],
            env={**env, "RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    distributed = json.loads(outputs[0][0].strip().splitlines()[-1])

    single = LDLMetrics()
    single.update(preds, target)
    expected = {k: v.item() for k, v in single.compute().items()}
    assert distributed["world"] == 2
    assert distributed["counts"]["local"] == [37] * 6  # rank 0's own share
    assert distributed["counts"]["total"] == [101] * 6  # every sample once, none twice
    for name, value in expected.items():
        assert distributed["result"][name] == pytest.approx(value, abs=1e-12), name
