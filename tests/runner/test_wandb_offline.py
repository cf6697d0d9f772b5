"""W&B through the protocol runner, offline: one run per fold, grouped, tagged, config uploaded.

The test reads what W&B wrote to disk (the offline ``run-<id>.wandb`` file), not what the logger
object holds in memory, so it checks what ``wandb sync`` would upload.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpcl.runner import ProtocolRun

REPO = Path(__file__).resolve().parents[2]
MLP = str(REPO / "experiments" / "synthetic" / "mlp.yaml")
WANDB = str(REPO / "experiments" / "logging" / "wandb.yaml")

# The .wandb file: a 7-byte header (":W&B", magic, version), then LevelDB-log blocks of 32 KiB
# holding records (crc32 4 bytes, length 2, type 1: full / first / middle / last chunk).
_HEADER = 7
_BLOCK = 32768
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[bytes]:
    assert data[:4] == b":W&B", "not a W&B transaction log"
    pos, pending = _HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK_HEADER:
            pos += _BLOCK - pos % _BLOCK  # block trailer: padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        pos += _CHUNK_HEADER
        chunk, pos = data[pos : pos + length], pos + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk


def read_offline_run(path: Path) -> dict[str, Any]:
    """Group, tags, merged config and saved file names of an offline run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    run: dict[str, Any] = {
        "group": None,
        "tags": set(),
        "job_type": None,
        "config": {},
        "files": set(),
    }

    def apply(updates: Any) -> None:
        for item in updates:
            keys = list(item.nested_key) or [item.key]
            target = run["config"]
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = json.loads(item.value_json)

    for chunk in _chunks(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(group=record.run.run_group, tags=set(record.run.tags))
            run["job_type"] = record.run.job_type
            apply(record.run.config.update)
        elif kind == "config":
            apply(record.config.update)
        elif kind == "files":
            run["files"] |= {f.path for f in record.files.files}
    return run


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B offline, with every folder it may touch inside the test's temporary directory."""
    home = tmp_path / "wandb-home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        (home / var.lower()).mkdir(parents=True)
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    import wandb

    wandb.finish()


def test_protocol_run_writes_one_grouped_tagged_offline_run_per_fold(in_tmp_cwd, wandb_offline):
    out = in_tmp_cwd / "kfold" / "tiny-mlp"
    overrides = [
        "--data.init_args.num_subjects=4",
        "--data.init_args.rows_per_clip=4",
        "--data.init_args.num_folds=2",
        f"--data.init_args.root={in_tmp_cwd / 'data'}",
        "--trainer.max_epochs=1",
    ]
    ProtocolRun([MLP, WANDB], "kfold", out, overrides=overrides).run()

    for fold in (0, 1):
        fold_dir = out / f"fold-0{fold}-seed-3407"
        files = sorted(fold_dir.glob("wandb/offline-run-*/run-*.wandb"))
        assert len(files) == 1, f"fold {fold}: expected its own offline run, found {files}"
        run = read_offline_run(files[0])
        assert run["group"] == "kfold-tiny-mlp"
        assert {f"fold-{fold}", "seed-3407", "kfold"} <= run["tags"]
        assert run["job_type"] == "kfold"

        # The resolved config (defaults filled in) is the run's config under "cli" ...
        assert "cli" in run["config"], f"fold {fold}: no resolved config in {sorted(run['config'])}"
        cli = run["config"]["cli"]
        assert cli["data"]["init_args"]["fold"] == fold
        assert cli["data"]["init_args"]["protocol"] == "kfold"
        assert cli["model"]["class_path"] == "mpcl.models.MLPModule"
        assert cli["trainer"]["logger"]["class_path"].endswith("WandbLogger")
        assert cli["checkpoint"]["monitor"] == "val/kl"
        # ... equal to the config.yaml saved beside the fold's logs, and uploaded as a file.
        saved = yaml.safe_load((fold_dir / "config.yaml").read_text())
        assert cli == saved
        assert "cli_config.yaml" in run["files"]
        uploaded = files[0].parent / "files" / "cli_config.yaml"
        assert yaml.safe_load(uploaded.read_text()) == saved
