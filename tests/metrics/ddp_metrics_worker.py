"""Worker for the 2-process metric test: each rank scores its share and prints the result."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from mpcl.metrics import LDLMetrics


def main() -> None:
    """Usage: ``python ddp_metrics_worker.py DATA.pt``; env RANK, WORLD_SIZE, MASTER_* set."""
    data = torch.load(sys.argv[1], weights_only=True)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    collection = LDLMetrics()
    # uneven shares: rank 0 takes the first 37 rows, rank 1 the rest, in two updates each
    cut = 37
    rows = slice(0, cut) if rank == 0 else slice(cut, None)
    preds, target = data["preds"][rows], data["target"][rows]
    half = len(preds) // 2
    collection.update(preds[:half], target[:half])
    collection.update(preds[half:], target[half:])
    result = {k: v.item() for k, v in collection.compute().items()}
    # compute() syncs only for the result and restores the local states afterwards
    local = torch.tensor([int(m.count) for m in collection.values()])
    total = local.clone()
    dist.all_reduce(total)
    counts = {"local": local.tolist(), "total": total.tolist()}
    if rank == 0:
        print(json.dumps({"result": result, "counts": counts, "world": world}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
