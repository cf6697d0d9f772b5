"""Worker of ``test_ddp_banks_identical_and_equal_to_union_update`` (run as a script).

Two gloo processes hold the same MPCLNet; each runs one training forward on its own half of a
batch. Each rank saves its banks after that forward, plus (computed before the process group
exists, so without all-reduce) the banks after a single-process forward on the whole batch and
on its own half only.

Usage: python ddp_bank_worker.py OUT_DIR [target|centered]
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from datamodules.metadata import DatasetMetadata
from mpcl.nn import MPCLNet

WORLD_SIZE = 2
PER_RANK = 6
META = DatasetMetadata(
    emotion_names=("a", "b", "c", "d"),
    valence_groups=(0, 0, 1, 1),
    modality_shapes={"eeg": (6, 5), "gsr": (12,), "face": (30,)},
    physiological=("eeg", "gsr"),
    behavioral=("face",),
)


def build(weighting: str) -> MPCLNet:
    torch.manual_seed(0)
    return MPCLNet(
        META,
        hidden_dim=16,
        prototypes_per_emotion=3,
        momentum=0.5,
        dropout=0.0,
        ema_weighting=weighting,
    ).train()


def banks(net: MPCLNet) -> dict[str, torch.Tensor]:
    return {name: module.bank.detach().clone() for name, module in net.prototypes.items()}


def data() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    size = WORLD_SIZE * PER_RANK
    batch = {k: torch.randn(size, *s, generator=generator) for k, s in META.modality_shapes.items()}
    target = torch.softmax(2 * torch.randn(size, META.num_emotions, generator=generator), -1)
    return batch, target


def shard(batch: dict[str, torch.Tensor], target: torch.Tensor, rank: int) -> tuple:
    rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    return {k: v[rows] for k, v in batch.items()}, target[rows]


def run(rank: int, port: int, out: str, weighting: str) -> None:
    batch, target = data()
    result = {"initial": banks(build(weighting))}
    reference = build(weighting)
    reference(batch, target)
    result["union"] = banks(reference)
    alone = build(weighting)
    alone(*shard(batch, target, rank))
    result["shard"] = banks(alone)

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        net = build(weighting)
        net(*shard(batch, target, rank))
        result["ddp"] = banks(net)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(out) / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    torch.set_num_threads(1)
    weighting = sys.argv[2] if len(sys.argv) > 2 else "target"
    mp.spawn(run, args=(free_port(), sys.argv[1], weighting), nprocs=WORLD_SIZE, join=True)
