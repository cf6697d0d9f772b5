"""DMER feature files: layout, MATLAB v5 and v7.3 reading, and every bad-input error."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from datamodules.dmer import (
    DMER_EMOTIONS,
    DMER_VALID_SUBJECTS,
    DMERDataModule,
    load_dmer_file,
)
from datamodules.io import DataFormatError


def _arrays(rows_per_clip=2, seed=0):
    rng = np.random.default_rng(seed)
    vids = np.repeat(rng.permutation(32), rows_per_clip)
    return {
        "feas": rng.normal(size=(len(vids), 913)),
        "vids": vids[:, None].astype(np.float64),
        "dis_label": rng.integers(1, 6, size=(32, 10)).astype(np.float64),
    }


def _write(path, arrays):
    scipy.io.savemat(path, arrays)
    return path


def _write_v73(path, arrays):
    """An HDF5 file laid out as MATLAB v7.3 writes it: 512-byte user block, transposed arrays."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=np.asarray(value).T)
    return path


def test_columns_are_split_into_modalities_channel_major(tmp_path):
    arrays = _arrays()
    table = load_dmer_file(_write(tmp_path / "9.mat", arrays), 9)
    feas = arrays["feas"].astype(np.float32)
    assert table.features["eeg"].shape == (64, 18, 5)
    assert table.features["eeg"].dtype == torch.float32
    # channel c, band b is column 5 c + b
    assert table.features["eeg"][:, 3, 4].numpy() == pytest.approx(feas[:, 19])
    assert np.array_equal(table.features["gsr"].numpy(), feas[:, 90:118])
    assert np.array_equal(table.features["ppg"].numpy(), feas[:, 118:145])
    assert np.array_equal(table.features["face"].numpy(), feas[:, 145:])
    assert torch.equal(table.subject, torch.full((64,), 9))


def test_targets_categories_and_positions(tmp_path):
    arrays = _arrays(rows_per_clip=3)
    table = load_dmer_file(_write(tmp_path / "1.mat", arrays), 1)
    vids = arrays["vids"][:, 0].astype(int)
    labels = arrays["dis_label"]
    expected = labels[vids] / labels[vids].sum(1, keepdims=True)
    assert table.target.numpy() == pytest.approx(expected.astype(np.float32))
    assert torch.allclose(table.target.sum(1), torch.ones(len(table)))
    assert table.trial.tolist() == vids.tolist()
    assert table.category.tolist() == [0 if v < 8 else 1 if v < 16 else 2 for v in vids]
    # rows of a clip are numbered in file order, even when clips interleave
    arrays["vids"] = np.tile(np.arange(32), 3)[:, None].astype(np.float64)
    table = load_dmer_file(_write(tmp_path / "2.mat", arrays), 2)
    assert table.position.tolist() == [0] * 32 + [1] * 32 + [2] * 32


def test_v73_hdf5_files_read_like_v5_files(tmp_path):
    arrays = _arrays(seed=3)
    v5 = load_dmer_file(_write(tmp_path / "4.mat", arrays), 4)
    v73_path = _write_v73(tmp_path / "5.mat", arrays)
    assert h5py.is_hdf5(v73_path)
    with h5py.File(v73_path) as handle:
        assert handle["feas"].shape == (913, 64)  # MATLAB's column-major layout
    v73 = load_dmer_file(v73_path, 4)
    for name in v5.features:
        assert torch.equal(v5.features[name], v73.features[name])
    assert torch.equal(v5.target, v73.target) and torch.equal(v5.position, v73.position)


def _bad_cases():
    def set_(key, value):
        return lambda a: a.__setitem__(key, value)

    def vids_(fn):
        return lambda a: a.__setitem__("vids", fn(a["vids"].copy()))

    def nan(a):
        a["feas"][5, 7] = np.nan

    def inf(a):
        a["feas"][60, 900] = -np.inf

    def out_of_range(v):
        v[3] = 32
        return v

    def negative_vid(v):
        v[0] = -1
        return v

    def fractional(v):
        v[1] = 2.5
        return v

    def empty_clip(v):
        v[v == 17] = 16
        return v

    def negative_label(a):
        a["dis_label"][4, 2] = -1

    def zero_label(a):
        a["dis_label"][30] = 0

    return {
        "missing key": (lambda a: a.pop("dis_label"), r"missing field\(s\) \['dis_label'\]"),
        "wrong column count": (set_("feas", np.zeros((64, 912))), "expected N x 913"),
        "NaN in feas": (nan, "NaN/inf.*row 5, column 7"),
        "inf in feas": (inf, "NaN/inf.*row 60, column 900"),
        "vid above 31": (vids_(out_of_range), r"clip ids \[32\] outside 0..31"),
        "negative vid": (vids_(negative_vid), r"clip ids \[-1\]"),
        "fractional vid": (vids_(fractional), "non-integer"),
        "vids/feas row mismatch": (vids_(lambda v: v[:-1]), "'vids' has 63 rows but 'feas' has 64"),
        "clip without rows": (vids_(empty_clip), r"clips \[17\] have no rows"),
        "no rows": (
            lambda a: a.update(feas=np.zeros((0, 913)), vids=np.zeros((0, 1))),
            "'feas' has no rows",
        ),
        "dis_label shape": (set_("dis_label", np.ones((31, 10))), "expected 32 x 10"),
        "negative label row": (negative_label, r"negative ratings in rows \(clips\) \[4\]"),
        "zero-sum label row": (zero_label, r"rows \(clips\) \[30\] sum to zero"),
    }


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_file_and_problem(tmp_path, case):
    corrupt, message = BAD_CASES[case]
    arrays = _arrays()
    corrupt(arrays)
    path = _write(tmp_path / "12.mat", arrays)
    with pytest.raises(DataFormatError, match=message) as error:
        load_dmer_file(path, 12)
    assert str(path) in str(error.value)


def test_bad_input_in_v73_file_is_reported_too(tmp_path):
    arrays = _arrays()
    arrays["feas"] = arrays["feas"][:, :900]
    path = _write_v73(tmp_path / "8.mat", arrays)
    with pytest.raises(DataFormatError, match=f"{path}.*expected N x 913"):
        load_dmer_file(path, 8)


def test_unreadable_and_missing_files(tmp_path):
    garbage = tmp_path / "6.mat"
    garbage.write_bytes(b"this is not a MAT file at all" * 20)
    with pytest.raises(DataFormatError, match=f"{garbage}: not a readable"):
        load_dmer_file(garbage, 6)
    with pytest.raises(DataFormatError, match="file not found"):
        load_dmer_file(tmp_path / "7.mat", 7)
    _write(tmp_path / "1.mat", _arrays())
    datamodule = DMERDataModule(str(tmp_path), subjects=[1, 2])
    with pytest.raises(DataFormatError, match=r"missing DMER feature file.*2\.mat"):
        datamodule.setup()
    with pytest.raises(DataFormatError, match="folder not found"):
        DMERDataModule(str(tmp_path / "nowhere")).setup()


def test_metadata_is_known_without_reading_data():
    datamodule = DMERDataModule("/does/not/exist")
    metadata = datamodule.metadata
    assert metadata.name == "dmer"
    assert metadata.emotion_names == DMER_EMOTIONS
    assert metadata.valence_groups == (0,) * 5 + (1,) * 5
    assert metadata.physiological == ("eeg", "gsr", "ppg")
    assert metadata.behavioral == ("face",)
    assert dict(metadata.modality_shapes) == {
        "eeg": (18, 5),
        "gsr": (28,),
        "ppg": (27,),
        "face": (768,),
    }
    assert datamodule.subject_ids() == list(DMER_VALID_SUBJECTS)
    assert len(DMER_VALID_SUBJECTS) == 73 and not {3, 4, 13, 16, 17, 27, 31} & set(
        DMER_VALID_SUBJECTS
    )
    assert datamodule.fold_count == 5
    assert DMERDataModule("/x", protocol="loso").fold_count == 73
    with pytest.raises(ValueError, match="modalities"):
        DMERDataModule("/x", modalities=["eeg", "audio"])


def test_loads_folder_and_restricts_modalities(tiny_dmer_dir):
    subjects = list(DMER_VALID_SUBJECTS[:3])
    datamodule = DMERDataModule(
        str(tiny_dmer_dir), subjects=subjects, modalities=["face", "eeg"], num_folds=3
    )
    assert datamodule.metadata.physiological == ("eeg",)
    assert datamodule.metadata.behavioral == ("face",)
    datamodule.setup()
    assert datamodule.table.subjects == subjects
    assert set(datamodule.table.features) == {"eeg", "face"}
    batch = next(iter(datamodule.train_dataloader()))
    assert set(batch) == {"eeg", "face", "target", "subject", "trial", "index"}
