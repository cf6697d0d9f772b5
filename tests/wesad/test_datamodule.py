from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.metadata import DatasetMetadata
from datamodules.wesad import QuestFormatError, WESADDataModule, WESADFormatError
from datamodules.wesad.features import FEATURE_NAMES
from datamodules.wesad.layout import DEFAULT_ITEMS, LABEL_RATE, SUBJECTS

CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "wesad" / "mlp.yaml"
TRIAL_OF_ENTRY = {"Base": 1, "TSST": 2, "Fun": 3, "Medi 1": 4, "Medi 2": 5}


def test_metadata_without_data(tmp_path):
    dm = WESADDataModule(root=str(tmp_path / "nowhere"))
    meta = dm.metadata
    assert meta.name == "wesad"
    assert meta.emotion_names == DEFAULT_ITEMS
    assert meta.physiological == (
        "ecg", "eda_chest", "emg", "resp", "temp_chest", "bvp", "eda_wrist", "temp_wrist"
    )  # fmt: skip
    assert meta.behavioral == ("acc_chest", "acc_wrist")
    assert meta.modality_shapes == {k: (len(v),) for k, v in FEATURE_NAMES.items()}
    assert DatasetMetadata.coerce(meta.to_dict()) == meta
    assert dm.subject_ids() == [int(s[1:]) for s in SUBJECTS] and len(SUBJECTS) == 15
    assert dm.protocol == "loso"


def test_bad_arguments():
    with pytest.raises(ValueError, match="'X3'"):
        WESADDataModule(subjects=["X3"])
    with pytest.raises(ValueError, match=r"window_seconds=5\.1"):
        WESADDataModule(window_seconds=5.1)
    with pytest.raises(ValueError, match="PANAS"):
        WESADDataModule(items=["Upset"])


def test_missing_subject_directory(fake_wesad):
    root, _ = fake_wesad
    dm = WESADDataModule(root=str(root), subjects=["S2", "S9"], cache_dir=None)
    with pytest.raises(WESADFormatError, match=r"S9/S9\.pkl.*subject folders found: \['S2'"):
        dm.setup()


def test_label_round_without_questionnaire_round(fake_wesad, tmp_path):
    root, _ = fake_wesad
    (tmp_path / "S2").mkdir()
    (tmp_path / "S2" / "S2.pkl").symlink_to(root / "S2" / "S2.pkl")
    lines = (root / "S2" / "S2_quest.csv").read_text().splitlines()
    lines = [line.replace(";Medi 2;", ";") for line in lines]
    panas = [i for i, line in enumerate(lines) if line.startswith("# PANAS")]
    del lines[panas[-1]]  # the Medi 2 ratings
    (tmp_path / "S2" / "S2_quest.csv").write_text("\n".join(lines))
    dm = WESADDataModule(root=str(tmp_path), subjects=["S2"], cache_dir=str(tmp_path / "c"))
    with pytest.raises(
        QuestFormatError, match=r"subject S2 has no rated round number 2 of condition 4"
    ):
        dm.load_table()


def test_zero_sum_rounds_are_reported_before_extraction(fake_wesad, tmp_path, monkeypatch):
    import datamodules.wesad.datamodule as datamodule_module

    root, truth = fake_wesad
    subjects = list(truth)[:2]
    for number, subject in enumerate(subjects):
        (tmp_path / subject).mkdir()
        (tmp_path / subject / f"{subject}.pkl").symlink_to(root / subject / f"{subject}.pkl")
        lines = (root / subject / f"{subject}_quest.csv").read_text().splitlines()
        panas = [i for i, line in enumerate(lines) if line.startswith("# PANAS")]
        lines[panas[number]] = "# PANAS;" + ";".join(["0"] * 24)  # Base of one, TSST...
        if number == 1:  # ... the 26-item stress round of the other
            lines[panas[number]] = "# PANAS;" + ";".join(["0"] * 26)
        (tmp_path / subject / f"{subject}_quest.csv").write_text("\n".join(lines))

    def refuse(*args, **kwargs):
        raise AssertionError("features were extracted before the labels were checked")

    monkeypatch.setattr(datamodule_module, "load_subject", refuse)
    dm = WESADDataModule(root=str(tmp_path), subjects=subjects, cache_dir=str(tmp_path / "c"))
    with pytest.raises(QuestFormatError, match=r"^2 rated round\(s\)") as error:
        dm.load_table()
    message = str(error.value)
    assert f"subject {subjects[0]}, round 'Base'" in message
    assert f"subject {subjects[1]}, round 'TSST'" in message


@pytest.fixture(scope="module")
def table(fake_wesad, tmp_path_factory):
    root, truth = fake_wesad
    dm = WESADDataModule(
        root=str(root),
        subjects=list(truth),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        standardize=False,
    )
    return dm.load_table()


def test_table_rows_trials_and_targets(table, fake_wesad):
    _, truth = fake_wesad
    assert table.subjects == sorted(int(s[1:]) for s in truth)
    for subject, fake in truth.items():
        rows = table.subject == int(subject[1:])
        for entry, trial in TRIAL_OF_ENTRY.items():
            mine = rows & (table.trial == trial)
            first, last = fake.segments[entry]
            assert int(mine.sum()) == (last - first - 5 * LABEL_RATE) // LABEL_RATE + 1
            assert table.position[mine].tolist() == list(range(int(mine.sum())))
            assert set(table.category[mine].tolist()) == {min(trial, 4)}
            ratings = dict(zip(fake.items(entry), fake.panas[entry], strict=True))
            expected = np.array([ratings[i] for i in DEFAULT_ITEMS])
            expected /= expected.sum()
            np.testing.assert_allclose(
                table.target[mine].numpy(), expected[None].repeat(int(mine.sum()), 0), rtol=1e-6
            )
    assert torch.allclose(table.target.sum(1), torch.ones(len(table)))
    assert all(torch.isfinite(v).all() for v in table.features.values())


def test_loso_setup_and_batches(fake_wesad, tmp_path):
    root, truth = fake_wesad
    dm = WESADDataModule(
        root=str(root), subjects=list(truth), cache_dir=str(tmp_path), batch_size=32,
        items=["Happy", "Stressed", "Sad"], split_file=str(tmp_path / "split.json"),
    )  # fmt: skip
    dm.setup()
    test_subjects = dm.table.subject[dm.splits["test"]].unique().tolist()
    assert test_subjects == [2]
    assert not set(dm.table.subject[dm.splits["train"]].tolist()) & {2}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {*FEATURE_NAMES, "target", "subject", "trial", "index"}
    assert batch["target"].shape == (32, 3)
    assert dm.metadata.valence_groups == (0, 1, 1)
    assert (tmp_path / "split.json").is_file()


def test_experiment_config_trains_one_step(fake_wesad, in_tmp_cwd, tmp_path):
    from mpcl.cli import build_cli

    root, truth = fake_wesad
    cli = build_cli(
        [
            "fit",
            "--config",
            str(CONFIG),
            f"--data.init_args.root={root}",
            f"--data.init_args.subjects={list(truth)}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--trainer.fast_dev_run=true",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert cli.model.hparams["metadata"]["name"] == "wesad"
