import os

import numpy as np
import pytest

import datamodules.wesad.subject as subject_module
from datamodules.wesad.layout import pickle_path
from datamodules.wesad.subject import load_subject


def _refuse(*args, **kwargs):
    raise AssertionError("features were recomputed")


@pytest.fixture
def first_load(fake_wesad, tmp_path):
    root, truth = fake_wesad
    subject = next(iter(truth))
    cache = tmp_path / "cache"
    return root, subject, cache, load_subject(root, subject, 5.0, 1.0, cache)


def test_second_load_reads_the_cache(first_load, monkeypatch):
    root, subject, cache, first = first_load
    entries = sorted(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".npz"
    assert entries[0].name.startswith(f"{subject}-")
    monkeypatch.setattr(subject_module, "extract_features", _refuse)
    second = load_subject(root, subject, 5.0, 1.0, cache)
    for name, values in first.features.items():
        np.testing.assert_array_equal(second.features[name], values)
    for key in ("start", "condition", "occurrence", "position"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))
    with np.load(entries[0], allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_new_settings_or_new_file_recompute(first_load, monkeypatch, tmp_path):
    root, subject, cache, _ = first_load
    monkeypatch.setattr(subject_module, "extract_features", _refuse)
    with pytest.raises(AssertionError, match="recomputed"):
        load_subject(root, subject, 2.5, 1.0, cache)
    path = pickle_path(root, subject)
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        with pytest.raises(AssertionError, match="recomputed"):
            load_subject(root, subject, 5.0, 1.0, cache)
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_corrupt_entry_is_recomputed_and_replaced(first_load, caplog):
    root, subject, cache, first = first_load
    (entry,) = cache.iterdir()
    entry.write_bytes(b"truncated")
    again = load_subject(root, subject, 5.0, 1.0, cache)
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(again.features["ecg"], first.features["ecg"])
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary files left
    with np.load(entry, allow_pickle=False) as data:
        assert "feature_ecg" in data.files
