"""Safe checkpoint loading: pickle and import payloads never run, remote URLs are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO, train_tiny_mlp

from mpcl.cli import main as mpcl_main


class _Payload:
    """Unpickling runs ``open(marker, "w")``: the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[str]]:
    """A 1-epoch tiny MLP checkpoint and its config arguments."""
    return train_tiny_mlp(tmp_path_factory.mktemp("trained"))


def _pickle_payload(path: Path, marker: Path) -> Path:
    """A checkpoint in torch's own format whose unpickling opens ``marker``."""
    torch.save({"state_dict": {}, "x": _Payload(marker)}, path)
    assert not marker.exists()
    return path


def _import_payload(trained_ckpt: Path, folder: Path, marker: Path) -> Path:
    """A valid weights-only checkpoint naming ``helpers.Model``; helpers.py writes the marker."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helpers.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Model:\n    pass\n"
    )
    checkpoint = torch.load(trained_ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "helpers.Model"
    path = folder / "model.ckpt"
    torch.save(checkpoint, path)
    return path


def _refused_in_one_line(capsys, path_text: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err[-2000:]
    assert path_text in lines[0] and "refused" in lines[0]
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err
    return lines[0]


@pytest.mark.parametrize("form", ["path", "file-url"])
@pytest.mark.parametrize("command", ["test", "predict"])
def test_pickle_payload_never_runs(trained, tmp_path, monkeypatch, capsys, form, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # the environment a user may have
    marker = tmp_path / "marker"
    path = _pickle_payload(tmp_path / "evil.ckpt", marker)
    where = str(path) if form == "path" else path.as_uri()
    _, args = trained
    try:
        mpcl_main([command, *args, f"--ckpt_path={where}", "--trainer.enable_progress_bar=false"])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    except Exception as error:  # old code: a traceback after the payload ran
        code = repr(error)
    assert not marker.exists(), "the pickle payload ran"
    assert code == 1
    _refused_in_one_line(capsys, where)


def test_import_payload_never_runs_in_test(trained, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "marker"
    path = _import_payload(trained[0], tmp_path / "ckpts", marker)
    monkeypatch.chdir(path.parent)  # helpers.py importable from the working directory
    monkeypatch.syspath_prepend(str(path.parent))
    with pytest.raises(SystemExit):
        mpcl_main(["test", *trained[1], f"--ckpt_path={path}"])
    assert not marker.exists()
    line = _refused_in_one_line(capsys, str(path))
    assert "helpers.Model" in line


def test_import_payload_never_runs_in_export(trained, tmp_path):
    marker = tmp_path / "marker"
    path = _import_payload(trained[0], tmp_path / "ckpts", marker)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path.parent}"}
    for where in (str(path), path.as_uri()):
        done = subprocess.run(
            [sys.executable, "-m", "mpcl.export", "--ckpt", where, "--output", "m.pt"],
            cwd=path.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1
        assert not marker.exists()
        assert "helpers.Model" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x.ckpt", "https://example.org/x.ckpt", "s3://bucket/x.ckpt"]
)
def test_remote_checkpoints_are_refused(trained, url, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        mpcl_main(["test", *trained[1], f"--ckpt_path={url}"])
    _refused_in_one_line(capsys, url)
    from mpcl.checkpoints import CheckpointRefused, load_checkpoint

    with pytest.raises(CheckpointRefused):
        load_checkpoint(url)


def test_resume_from_a_payload_is_refused(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    path = _pickle_payload(tmp_path / "evil.ckpt", marker)
    with pytest.raises(SystemExit):
        mpcl_main(["fit", *trained[1], f"--ckpt_path={path.as_uri()}"])
    assert not marker.exists()
    _refused_in_one_line(capsys, path.as_uri())


def test_class_paths_are_checked_without_import(monkeypatch):
    from mpcl.checkpoints import ALLOW_CLASSES_ENV, CheckpointRefused, check_class_path

    assert check_class_path("mpcl.models.MLPModule", "x") == "mpcl.models.MLPModule"
    assert check_class_path("mpcl.baselines.HeLoModule", "x")
    for bad in ("helpers.Model", "os.system", "mpcl.models.base.Batch", "mpcl.nonexistent.X", 3):
        with pytest.raises(CheckpointRefused, match="not one of the project's model classes"):
            check_class_path(bad, "x")
    assert "helpers" not in sys.modules
    monkeypatch.setenv(ALLOW_CLASSES_ENV, "helpers.Model")
    assert check_class_path("helpers.Model", "x") == "helpers.Model"  # explicit opt-in


def test_file_urls_become_paths():
    from mpcl.checkpoints import CheckpointRefused, resolve_checkpoint_path

    assert resolve_checkpoint_path("file:///tmp/a%20b.ckpt") == Path("/tmp/a b.ckpt")
    assert resolve_checkpoint_path("file://localhost/tmp/x.ckpt") == Path("/tmp/x.ckpt")
    with pytest.raises(CheckpointRefused):
        resolve_checkpoint_path("file://otherhost/tmp/x.ckpt")
