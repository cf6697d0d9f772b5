import os
import pickle
import pickletools

import numpy as np
import pytest

from datamodules.io import DataFormatError
from datamodules.wesad.fake_signals import make_subject
from datamodules.wesad.fixtures import write_py2_pickle
from datamodules.wesad.layout import pickle_path
from datamodules.wesad.safe_pickle import (
    UnsafePickleError,
    WESADFormatError,
    load_recording,
    safe_load,
    validate_recording,
)


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _globals(data: bytes) -> set[str]:
    names = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
    return names


@pytest.fixture(scope="module")
def small_subject():
    data, truth = make_subject("S2", seconds_per_condition=8.0, seed=3)
    return data, truth


def test_py2_format_references_only_numpy_reconstruction(small_subject, tmp_path):
    path = tmp_path / "S2.pkl"
    write_py2_pickle(small_subject[0], path)
    raw = path.read_bytes()
    assert _globals(raw) == {
        "numpy.core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
    }
    # byte strings are Python 2 BINSTRINGs, decoded with latin1 on load
    assert any(op.name == "BINSTRING" for op, _, _ in pickletools.genops(raw))
    loaded = safe_load(path)
    np.testing.assert_array_equal(loaded["label"], small_subject[0]["label"])
    np.testing.assert_array_equal(
        loaded["signal"]["chest"]["ECG"], small_subject[0]["signal"]["chest"]["ECG"]
    )
    assert loaded["subject"] == "S2"


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_python3_resaved_pickles_load(small_subject, tmp_path, protocol):
    path = tmp_path / "S2.pkl"
    path.write_bytes(pickle.dumps(small_subject[0], protocol=protocol))
    recording = load_recording(path)
    np.testing.assert_array_equal(
        recording.wrist["BVP"], small_subject[0]["signal"]["wrist"]["BVP"]
    )


def test_planted_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "S2.pkl"
    path.write_bytes(pickle.dumps({"subject": "S2", "label": _Planted(marker)}, protocol=2))
    pickle.loads(path.read_bytes())  # a plain unpickler runs the payload: it is live
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafePickleError, match=r"S2\.pkl.*(posix|os|nt)\.system") as error:
        safe_load(path)
    assert isinstance(error.value, DataFormatError)
    assert not marker.exists()


def test_planted_code_inside_an_object_array_is_refused(tmp_path):
    # The numpy globals are allowed, so the payload hides in an object array's elements.
    marker = tmp_path / "pwned"
    path = tmp_path / "S2.pkl"
    array = np.array([_Planted(marker), 1], dtype=object)
    path.write_bytes(pickle.dumps({"subject": "S2", "label": array}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system"):
        safe_load(path)
    assert not marker.exists()


def test_refuses_builtins_eval(tmp_path):
    path = tmp_path / "S2.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        safe_load(path)


def test_garbage_is_a_format_error(tmp_path):
    path = tmp_path / "S2.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(WESADFormatError, match=r"S2\.pkl"):
        safe_load(path)


def _copy(data):
    return {
        "subject": data["subject"],
        "label": data["label"],
        "signal": {part: dict(values) for part, values in data["signal"].items()},
    }


def test_validation_accepts_fixture(small_subject):
    recording = validate_recording(small_subject[0], "S2.pkl")
    assert recording.chest["ACC"].shape == (len(recording.label), 3)
    assert recording.wrist["EDA"].shape[1] == 1
    assert recording.duration == pytest.approx(small_subject[1].duration)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("label"), r"missing field 'label'"),
        (lambda d: d["signal"]["chest"].pop("Resp"), r"signal\['chest'\]\['Resp'\]"),
        (lambda d: d["signal"]["wrist"].pop("BVP"), r"signal\['wrist'\]\['BVP'\]"),
        (
            lambda d: d["signal"]["chest"].update(ECG=d["signal"]["chest"]["ECG"][:-5]),
            r"signal\['chest'\]\['ECG'\].*expected \d+",
        ),
        (
            lambda d: d["signal"]["chest"].update(ACC=d["signal"]["chest"]["ACC"][:, :2]),
            r"signal\['chest'\]\['ACC'\].*expected \(N, 3\)",
        ),
        (
            lambda d: d["signal"]["wrist"].update(EDA=np.zeros((3, 1))),
            r"signal\['wrist'\]\['EDA'\].*4 Hz",
        ),
        (
            lambda d: d["signal"]["wrist"].update(TEMP=np.array(["a"] * 10)),
            r"signal\['wrist'\]\['TEMP'\].*numeric",
        ),
        (
            lambda d: d["signal"]["chest"].update(
                EDA=np.full_like(d["signal"]["chest"]["EDA"], np.nan)
            ),
            r"signal\['chest'\]\['EDA'\].*NaN",
        ),
    ],
)
def test_validation_names_file_and_field(small_subject, mutate, message):
    data = _copy(small_subject[0])
    mutate(data)
    with pytest.raises(WESADFormatError, match=r"S9\.pkl.*" + message):
        validate_recording(data, "S9.pkl")


def test_missing_file(tmp_path):
    with pytest.raises(WESADFormatError, match=r"S4\.pkl: file not found"):
        load_recording(pickle_path(tmp_path, "S4"))
