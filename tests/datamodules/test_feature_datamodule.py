"""FeatureDataModule: train-only standardisation, split bookkeeping, batches and sharding."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from datamodule_fakes import TOY_METADATA, ToyDataModule, make_table
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser

from datamodules.base import FeatureDataModule
from datamodules.metadata import DatasetMetadata


def _toy(table=None, **kwargs):
    kwargs.setdefault("protocol", "kfold")
    kwargs.setdefault("num_folds", 3)
    return ToyDataModule(make_table() if table is None else table, **kwargs)


def test_standardisation_uses_training_rows_only():
    base = _toy(val_fraction=0.2)
    base.setup()
    changed_table = make_table()
    test_rows = base.splits["test"]
    changed_table.features["x"][test_rows] = changed_table.features["x"][test_rows] * 100 + 7
    changed = _toy(changed_table, val_fraction=0.2)
    changed.setup()
    assert torch.equal(base.feature_mean["x"], changed.feature_mean["x"])
    assert torch.equal(base.feature_std["x"], changed.feature_std["x"])
    # ... and they are the training rows' statistics, so training rows come out standardised
    train = base.table.features["x"][base.splits["train"]].double()
    assert train.mean(0) == pytest.approx(torch.zeros(3), abs=1e-5)
    assert train.std(0, correction=0) == pytest.approx(torch.ones(3), abs=1e-5)
    raw_train = make_table().features["x"][base.splits["train"]].double()
    assert base.feature_mean["x"].double() == pytest.approx(raw_train.mean(0), rel=1e-6)
    # validation rows are part of neither the statistics nor the training rows
    assert not torch.equal(base.feature_mean["x"], make_table().features["x"].mean(0))


def test_constant_features_are_centred_not_divided_by_zero():
    probe = _toy()
    probe.setup()
    test_row = probe.splits["test"][0]
    table = make_table()
    table.features["x"][:, 1] = 4.0
    table.features["x"][test_row, 1] = 5.0  # constant in training, not in test
    datamodule = _toy(table)
    datamodule.setup()
    values = datamodule.table.features["x"][:, 1]
    assert datamodule.feature_std["x"][1] == 1.0
    assert values[test_row] == 1.0
    assert (values[datamodule.splits["train"]] == 0).all()


def test_no_standardisation_keeps_raw_features():
    datamodule = _toy(standardize=False)
    datamodule.setup()
    assert torch.equal(datamodule.table.features["x"], make_table().features["x"])


def test_setup_loads_once_and_train_target_mean():
    datamodule = _toy(val_fraction=0.1)
    datamodule.setup("fit")
    datamodule.setup("test")
    assert datamodule.loads == 1
    expected = datamodule.table.target[datamodule.splits["train"]].double().mean(0)
    assert datamodule.train_target_mean() == pytest.approx(expected.float(), abs=1e-6)
    assert datamodule.train_target_mean().sum() == pytest.approx(1.0)


def test_batches_carry_modalities_targets_and_row_ids():
    datamodule = _toy(batch_size=16, eval_batch_size=50)
    datamodule.setup()
    for name, loader in [
        ("train", datamodule.train_dataloader()),
        ("test", datamodule.test_dataloader()),
    ]:
        batches = list(loader)
        assert {*batches[0]} == {"x", "target", "subject", "trial", "index"}
        index = torch.cat([b["index"] for b in batches])
        assert sorted(index.tolist()) == datamodule.splits[name].tolist()
        for batch in batches:
            # features, targets and ids travel together with the row id
            assert torch.equal(batch["x"], datamodule.table.features["x"][batch["index"]])
            assert torch.equal(batch["target"], datamodule.table.target[batch["index"]])
            assert torch.equal(batch["subject"], datamodule.table.subject[batch["index"]])
    assert len(next(iter(datamodule.test_dataloader()))["index"]) == 50
    assert len(next(iter(datamodule.train_dataloader()))["index"]) == 16
    predict = torch.cat([b["index"] for b in datamodule.predict_dataloader()])
    assert torch.equal(predict, datamodule.splits["test"])


def test_training_batches_are_shuffled_by_shuffle_seed():
    def order(seed):
        datamodule = _toy(shuffle_seed=seed)
        datamodule.setup()
        return torch.cat([b["index"] for b in datamodule.train_dataloader()])

    assert torch.equal(order(0), order(0))
    assert not torch.equal(order(0), order(1))
    assert not torch.equal(order(0), torch.sort(order(0)).values)


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_rows_are_scored_exactly_once_across_two_ranks(split):
    seen, train_lengths = [], []
    for rank in range(2):
        datamodule = _toy(val_fraction=0.3, batch_size=7, eval_batch_size=5)
        datamodule.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        datamodule.setup()
        loader = getattr(datamodule, f"{split}_dataloader")()
        assert loader.world_size == 2 and loader.rank == rank
        seen.append(torch.cat([b["index"] for b in loader]))
        train_lengths.append(sum(len(b["index"]) for b in datamodule.train_dataloader()))
    all_rows = torch.cat(seen)
    assert len(all_rows) == len(datamodule.splits[split])  # no padding, no repeats
    assert torch.equal(torch.sort(all_rows).values, datamodule.splits[split])
    assert train_lengths[0] == train_lengths[1] == len(datamodule.splits["train"]) // 2


def test_split_file_is_written_at_setup(tmp_path):
    path = tmp_path / "out" / "split.json"
    datamodule = _toy(protocol="loso", fold=2, val_fraction=0.2, split_file=str(path))
    datamodule.setup()
    description = json.loads(path.read_text())
    assert description["protocol"] == "loso" and description["fold"] == 2
    assert description["dataset"] == "toy" and description["num_folds"] == 6
    assert description["splits"]["test"]["subjects"] == [datamodule.table.subjects[2]]
    for name, rows in datamodule.splits.items():
        assert description["splits"][name]["rows"] == rows.tolist()


def test_split_file_is_written_by_global_rank_zero_only(tmp_path):
    path = tmp_path / "split.json"
    datamodule = _toy(split_file=str(path))
    datamodule.trainer = SimpleNamespace(global_rank=1, world_size=2)
    datamodule.setup()
    assert not path.exists()


def test_bad_arguments_and_metadata_mismatch():
    with pytest.raises(ValueError, match="unknown protocol"):
        _toy(protocol="holdout")
    with pytest.raises(ValueError, match="val_fraction"):
        _toy(val_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        _toy(batch_size=0)
    with pytest.raises(ValueError, match="out of range"):
        _toy(fold=3).setup()
    with pytest.raises(RuntimeError, match="after setup"):
        _ = _toy().table

    class WrongShapes(ToyDataModule):
        @property
        def metadata(self) -> DatasetMetadata:
            return DatasetMetadata(
                emotion_names=TOY_METADATA.emotion_names,
                valence_groups=TOY_METADATA.valence_groups,
                modality_shapes={"x": (4,)},
                physiological=("x",),
                behavioral=(),
            )

    with pytest.raises(ValueError, match="metadata promises"):
        WrongShapes(make_table()).setup()


class _Linear(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 4)
        self.val_steps = 0

    def _loss(self, batch):
        log_p = torch.log_softmax(self.layer(batch["x"]), dim=1)
        return torch.nn.functional.kl_div(log_p, batch["target"], reduction="batchmean")

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.val_steps += 1
        self.log("val/loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self._loss(batch))

    def predict_step(self, batch, batch_idx):
        return batch["index"], torch.softmax(self.layer(batch["x"]), dim=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("val_fraction", [0.0, 0.2])
def test_lightning_fit_runs_with_and_without_validation(val_fraction):
    datamodule = _toy(val_fraction=val_fraction, batch_size=64)
    datamodule.setup()
    if val_fraction == 0:
        assert datamodule.val_dataloader() == []
    model = _Linear()
    trainer = Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=datamodule)
    assert trainer.state.finished
    assert trainer.global_step == 2 * len(datamodule.train_dataloader())
    expected_val = 0 if val_fraction == 0 else 2 * len(datamodule.val_dataloader())
    assert model.val_steps == expected_val
    assert "test/loss" in trainer.test(model, datamodule=datamodule, verbose=False)[0]
    predictions = trainer.predict(model, datamodule=datamodule)
    assert torch.equal(torch.cat([index for index, _ in predictions]), datamodule.splits["test"])


def test_datamodules_are_configurable_from_lightning_cli(tmp_path):
    parser = LightningArgumentParser()
    parser.add_subclass_arguments(FeatureDataModule, "data")
    config = parser.parse_args(
        [
            "--data=datamodules.SyntheticDMERDataModule",
            "--data.init_args.num_subjects=3",
            "--data.init_args.protocol=loso",
            "--data.init_args.modalities=[eeg,face]",
            f"--data.init_args.root={tmp_path}",
        ]
    )
    datamodule = parser.instantiate_classes(config).data
    assert datamodule.protocol == "loso" and datamodule.num_subjects == 3
    assert datamodule.metadata.modalities == ("eeg", "face")
    with pytest.raises(SystemExit):
        parser.parse_args(
            [
                "--data=datamodules.DMERDataModule",
                "--data.init_args.root=x",
                "--data.init_args.protocol=random",
            ]
        )


def test_a_subject_dependent_fold_standardises_only_its_subjects_rows(monkeypatch):
    standardised_rows = []
    apply = FeatureDataModule._apply_statistics

    def counting(table, statistics):
        standardised_rows.append(len(table))
        return apply(table, statistics)

    monkeypatch.setattr(FeatureDataModule, "_apply_statistics", staticmethod(counting))
    datamodule = _toy(protocol="random-window", fold=1, val_fraction=0.2)
    datamodule.setup()
    subject = datamodule.subject_ids()[1]
    subject_rows = int((make_table().subject == subject).sum())
    assert sum(standardised_rows) == subject_rows < len(make_table())
    # the whole table is standardised on demand, and the splits are its rows bit for bit
    whole = datamodule.table
    assert standardised_rows[-1] == len(make_table())
    for name, rows in datamodule.splits.items():
        assert torch.equal(datamodule.split_rows(name)["x"], whole.features["x"][rows])


def test_the_table_keeps_the_statistics_its_splits_were_built_with():
    datamodule = _toy()
    datamodule.setup()
    mean, std = datamodule.feature_mean["x"], datamodule.feature_std["x"]
    # a checkpoint's statistics replace those for prediction rows, not those of the splits
    datamodule.load_state_dict(
        {
            "feature_mean": {"x": mean + 5},
            "feature_std": {"x": std * 3},
            "subject_standardize": False,
        }
    )
    rows = datamodule.splits["train"]
    assert torch.equal(datamodule.split_rows("train")["x"], datamodule.table.features["x"][rows])
