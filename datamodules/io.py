"""File helpers of the datamodules: MATLAB reading, atomic writes, and the bad-input error.

This package does not import :mod:`mpcl` (which depends on it), so it keeps its own small
atomic-write helper.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io


class DataFormatError(ValueError):
    """A data file is missing, unreadable or does not hold what its format promises.

    The message always names the file, the field and what was expected.
    """


def read_mat_variables(path: str | os.PathLike[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the named matrices of a MATLAB ``.mat`` file, in MATLAB's row/column orientation.

    Files up to MATLAB v7 are read with :func:`scipy.io.loadmat`. MATLAB v7.3 files are HDF5
    files (with a 512-byte user block), which scipy cannot read; they are read with h5py.
    MATLAB stores arrays column-major and HDF5 row-major, so h5py sees an ``N x M`` MATLAB matrix
    as ``M x N``: every array read that way is transposed back here.

    Args:
        path: The ``.mat`` file.
        names: Variables to read. Missing ones are left out of the result (the caller decides
            whether that is an error, and names the file and field when it is).

    Returns:
        Variable name -> numpy array (at least 2-D, as MATLAB stores it).

    Raises:
        DataFormatError: The file does not exist or is not a readable MAT file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    if h5py.is_hdf5(path):
        return _read_hdf5_mat(path, names)
    try:
        content = scipy.io.loadmat(path, variable_names=list(names))
    except NotImplementedError as error:  # a v7.3 file whose HDF5 signature h5py missed
        raise DataFormatError(f"{path}: unsupported MAT file version ({error})") from error
    except Exception as error:  # scipy raises ValueError, TypeError, OSError... on bad bytes
        raise DataFormatError(
            f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})"
        ) from error
    return {name: np.asarray(content[name]) for name in names if name in content}


def _read_hdf5_mat(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as handle:
            out: dict[str, np.ndarray] = {}
            for name in names:
                if name not in handle:
                    continue
                node = handle[name]
                if not isinstance(node, h5py.Dataset):
                    raise DataFormatError(
                        f"{path}: field {name!r} is a MATLAB struct, expected a numeric matrix"
                    )
                _check_declared_size(path, name, node)
                # Transpose back to MATLAB's orientation (see read_mat_variables).
                out[name] = np.asarray(node[()]).T
            return out
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: not a readable MATLAB v7.3 (HDF5) file ({type(error).__name__}: {error})"
        ) from error


def _current_umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Largest compression ratio a compressed HDF5 dataset may claim (declared bytes / stored bytes).
#: Real feature matrices compress far less; a dataset that claims more is not read at all.
MAX_COMPRESSION_RATIO = 64


def _check_declared_size(path: Path, name: str, node: h5py.Dataset) -> None:
    """Refuse a dataset whose declared size the file cannot hold, before allocating it.

    A tiny file can declare a huge shape (its chunks never written); reading it would allocate
    the declared size. Uncompressed data must be stored in full; compressed data may be at most
    :data:`MAX_COMPRESSION_RATIO` times larger than what is stored.
    """
    declared = int(np.prod(node.shape, dtype=np.float64)) * node.dtype.itemsize
    stored = int(node.id.get_storage_size())
    compressed = node.compression is not None or node.scaleoffset is not None
    limit = stored * (MAX_COMPRESSION_RATIO if compressed else 1)
    if declared > max(limit, 4096):
        raise DataFormatError(
            f"{path}: field {name!r} declares shape {tuple(reversed(node.shape))} "
            f"({declared / 1e6:.1f} MB) but the file stores only {stored} bytes of it; "
            "expected a complete matrix"
        )


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file, which is then renamed.

    The temporary file lives in the same folder and is flushed to disk before the rename: a
    reader never sees a half-written file and a crash leaves the previous version intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask).
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
