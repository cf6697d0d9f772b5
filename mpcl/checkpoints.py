"""Checkpoint files: one safe loader for every command, and atomic writing.

Every path that reads a checkpoint (``mpcl fit --ckpt_path`` resume, ``test``, ``validate``,
``predict``, ``python -m mpcl.export``, the protocol runner's resume check) goes through
:func:`load_checkpoint`:

* the location must be a local file: a plain path or a ``file://`` URL. Anything with another
  scheme (``http://``, ``https://``, ``s3://`` ...) is refused unless explicitly allowed
  (``allow_remote=True`` or ``MPCL_ALLOW_REMOTE_CHECKPOINTS=1``), and even then it is read with
  the same weights-only unpickler;
* the bytes are read with ``torch.load(weights_only=True)``, always passed explicitly (an
  explicit ``True`` is not overridden by ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``);
* the model class recorded by LightningCLI (``hyper_parameters._class_path``) is checked
  *before* anything is imported: it must name one of the project's own model classes in a
  module that is already imported (:func:`project_model_classes`), or be listed in
  ``MPCL_ALLOW_CHECKPOINT_CLASSES`` (comma-separated class paths, an explicit opt-in).

A refused or unreadable checkpoint raises :class:`CheckpointError` whose message is one line:
the file and the reason, never torch's advice to retry with ``weights_only=False``.

Writing: :func:`atomic_torch_save` writes a temporary file in the checkpoint's own folder,
flushes it to disk, renames it over the target and flushes the folder, so a crash or a full disk
leaves the previous file intact (Lightning's own writer stages the bytes through fsspec, which
may copy across file systems). :class:`AtomicCheckpointIO` plugs both into a Trainer.
"""

from __future__ import annotations

import os
import pickle
import sys
import urllib.parse
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from datamodules.io import atomic_write

#: Environment variable that allows non-local checkpoint URLs (``1``, ``true``, ``yes``).
ALLOW_REMOTE_ENV = "MPCL_ALLOW_REMOTE_CHECKPOINTS"
#: Environment variable listing extra trusted model class paths (comma-separated).
ALLOW_CLASSES_ENV = "MPCL_ALLOW_CHECKPOINT_CLASSES"
#: Packages whose model classes a checkpoint may name.
PROJECT_MODEL_PACKAGES = ("mpcl.models", "mpcl.baselines")
_TRUE = {"1", "true", "yes", "y"}


class CheckpointError(ValueError):
    """A checkpoint was refused or could not be read; the message is one line naming the file."""


class CheckpointRefused(CheckpointError):
    """A checkpoint that must not be loaded: remote location, pickle payload, foreign class."""


class CheckpointUnreadable(CheckpointError):
    """A checkpoint whose bytes are not a complete torch checkpoint (truncated, corrupt)."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def resolve_checkpoint_path(
    path: str | os.PathLike[str], allow_remote: bool | None = None
) -> str | Path:
    r"""The local path of a checkpoint location, or the URL itself when remote ones are allowed.

    ``file:///abs/x.ckpt`` and ``file://localhost/abs/x.ckpt`` become ``/abs/x.ckpt``;
    a Windows drive letter (``C:\...``) is a path, not a scheme.

    Raises:
        CheckpointRefused: A non-local URL without ``allow_remote`` (or ``file://`` with a host).
    """
    text = os.fspath(path)
    parsed = urllib.parse.urlparse(text)
    if len(parsed.scheme) <= 1:  # no scheme, or a drive letter
        return Path(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise CheckpointRefused(
                f"{text}: refused: a file:// URL on host {parsed.netloc!r} is not a local file"
            )
        return Path(urllib.parse.unquote(parsed.path))
    if allow_remote is None:
        allow_remote = _env_flag(ALLOW_REMOTE_ENV)
    if not allow_remote:
        raise CheckpointRefused(
            f"{text}: refused: {parsed.scheme}:// is not a local file (download it first, or set "
            f"{ALLOW_REMOTE_ENV}=1 to read it, still weights-only)"
        )
    return text


def _first_line(error: BaseException) -> str:
    """The reason of a load error in one line, without torch's weights_only=False advice."""
    text = str(error).strip()
    # torch's message opens with "Weights only load failed. ... Re-running `torch.load` with
    # `weights_only` set to `False` will likely succeed ..."; the reason follows
    # "WeightsUnpickler error:" and ends before "Check the documentation".
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].split("Check the documentation", 1)[0]
        return " ".join(reason.split()) or "unsupported content"
    first = text.splitlines()[0] if text else type(error).__name__
    return first.split(" Re-running `torch.load`")[0].strip()


def _torch_load(source: Any, name: str, map_location: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the pickle-protocol notice of a payload
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _first_line(error)
        raise CheckpointRefused(
            f"{name}: refused: not a weights-only checkpoint ({reason})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise CheckpointUnreadable(f"{name}: checkpoint file not found") from None
        raise CheckpointUnreadable(
            f"{name}: unreadable checkpoint (truncated or corrupt: {_first_line(error)})"
        ) from None


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: Any = "cpu",
    allow_remote: bool | None = None,
    allowed_classes: set[str] | None = None,
) -> dict[str, Any]:
    """Read a checkpoint safely (see the module docstring) and check its model class path.

    Args:
        path: A local path or ``file://`` URL (others only with ``allow_remote``).
        map_location: As for :func:`torch.load`.
        allow_remote: Allow non-local URLs; default from ``MPCL_ALLOW_REMOTE_CHECKPOINTS``.
        allowed_classes: Extra trusted class paths; default from ``MPCL_ALLOW_CHECKPOINT_CLASSES``.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointRefused: Remote location, pickle payload, or a foreign model class.
        CheckpointUnreadable: Missing, truncated or corrupt file.
    """
    location = resolve_checkpoint_path(path, allow_remote)
    name = os.fspath(path)
    if isinstance(location, Path):
        if not location.is_file():
            raise CheckpointUnreadable(f"{name}: checkpoint file not found")
        checkpoint = _torch_load(location, name, map_location)
    else:
        import fsspec  # a remote location, explicitly allowed

        with fsspec.open(location, "rb") as handle:
            checkpoint = _torch_load(handle, name, map_location)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointUnreadable(
            f"{name}: not a Lightning checkpoint (holds a {type(checkpoint).__name__})"
        )
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if class_path is not None:
        check_class_path(class_path, name, allowed_classes)
    return dict(checkpoint)


def project_model_classes() -> dict[str, type]:
    """Class path -> class of every project model, under each name a project module exports it.

    Imports only the project's own model packages (:data:`PROJECT_MODEL_PACKAGES`).
    """
    import importlib

    from mpcl.models.base import EmotionDistributionModule

    for package in PROJECT_MODEL_PACKAGES:
        importlib.import_module(package)
    out: dict[str, type] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "mpcl" or module_name.startswith("mpcl.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, type) and issubclass(value, EmotionDistributionModule):
                out[f"{module_name}.{attr}"] = value
    return out


def _allowed_from_env() -> set[str]:
    raw = os.environ.get(ALLOW_CLASSES_ENV, "")
    return {item.strip() for item in raw.split(",") if item.strip()}


def check_class_path(
    class_path: Any, source: str | os.PathLike[str], allowed_classes: set[str] | None = None
) -> str:
    """``class_path`` if it names a project model class (or an explicitly trusted one).

    Nothing is imported for a class path outside the project: the check is a lookup in
    :func:`project_model_classes` and in the opt-in list.

    Raises:
        CheckpointRefused: Any other class path.
    """
    trusted = _allowed_from_env() if allowed_classes is None else set(allowed_classes)
    if isinstance(class_path, str) and (
        class_path in trusted or class_path in project_model_classes()
    ):
        return class_path
    raise CheckpointRefused(
        f"{os.fspath(source)}: refused: model class {class_path!r} is not one of the project's "
        f"model classes (trust it explicitly with {ALLOW_CLASSES_ENV}={class_path})"
    )


def model_class(class_path: str, source: str | os.PathLike[str]) -> type:
    """The class a checked class path names (imported only after :func:`check_class_path`)."""
    import importlib

    check_class_path(class_path, source)
    known = project_model_classes()
    if class_path in known:
        return known[class_path]
    module_name, _, attr = class_path.rpartition(".")  # explicitly trusted by the user
    return getattr(importlib.import_module(module_name), attr)


def _fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (the rename) to disk; not every platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over it, fsync the folder.

    A failure at any point (a full disk, a kill) leaves the previous ``path`` as it was and no
    temporary file behind (except after a kill, a hidden ``.NAME.*.tmp`` that nothing reads).
    """
    path = Path(resolve_checkpoint_path(path))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(dict(checkpoint), handle)

    atomic_write(path, write)
    _fsync_dir(path.parent)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic local writes and the project's safe loader."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` atomically in its own folder (see :func:`atomic_torch_save`)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read a checkpoint with :func:`load_checkpoint` (always weights-only)."""
        return load_checkpoint(path, map_location=map_location or "cpu")
