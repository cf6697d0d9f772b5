"""The in-memory data path: contiguous tables, batches by index, tables moved to the device once.

No GPU is needed: the ``meta`` device stands in for the trainer's accelerator (tensors move there
and are indexed like on any device, without data).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from datamodule_fakes import ToyDataModule, make_table

from datamodules.base import LightningInMemoryBatches


def _datamodule(**kwargs) -> ToyDataModule:
    dm = ToyDataModule(make_table(), protocol="kfold", num_folds=3, batch_size=16, **kwargs)
    dm.setup()
    return dm


def _attach(dm: ToyDataModule, device: str) -> None:
    strategy = SimpleNamespace(root_device=torch.device(device))
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=strategy)


def test_split_tables_are_contiguous_and_batches_are_gathered_by_index():
    dm = _datamodule()
    for name in ("train", "val", "test"):
        table = dm.split_rows(name)
        assert all(v.is_contiguous() for v in table.values()), name
    loader = dm.train_dataloader()
    assert isinstance(loader, LightningInMemoryBatches)  # no DataLoader, so no worker processes
    train = dm.split_rows("train")
    # position of each table row id within the training split
    position_of = torch.full((int(train["index"].max()) + 1,), -1)
    position_of[train["index"]] = torch.arange(len(train["index"]))
    seen = []
    for batch in loader:
        # the batch is the resident table indexed by row positions: ``index`` says which rows
        position = position_of[batch["index"]]
        assert torch.equal(batch["x"], train["x"][position])
        assert torch.equal(batch["target"], train["target"][position])
        seen.append(batch["index"])
    assert sorted(torch.cat(seen).tolist()) == sorted(train["index"].tolist())


def test_tables_move_to_the_trainer_device_once():
    dm = _datamodule()
    cpu_train = dm.split_rows("train")
    _attach(dm, "meta")
    first, again = dm.train_dataloader(), dm.train_dataloader()
    assert all(v.device.type == "meta" for v in first.table.values())
    # the second loader reuses the copy: same tensor objects, no second transfer
    assert all(first.table[k] is again.table[k] for k in first.table)
    batch = next(iter(first))
    assert batch["x"].device.type == "meta" and batch["x"].shape == (16, 3)
    # the CPU split stays as it was, for closed-form fits and train_target_mean
    assert dm.split_rows("train") is cpu_train and cpu_train["x"].device.type == "cpu"
    # a CPU trainer uses the CPU tables themselves (no copy)
    _attach(dm, "cpu")
    assert dm.train_dataloader().table["x"] is cpu_train["x"]


def test_setup_again_forgets_device_copies():
    dm = _datamodule()
    _attach(dm, "meta")
    dm.val_dataloader()
    assert dm._device_tables
    dm._table = None  # a fresh setup (e.g. a new fold) rebuilds the splits
    dm.setup()
    assert dm._device_tables == {}


def test_transfer_of_a_resident_batch_is_a_no_op():
    dm = _datamodule()
    batch = next(iter(dm.test_dataloader()))
    assert dm.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved is not batch and moved["x"].device.type == "meta"
