"""Fast single-window inference: compiled programs and CUDA-graph replay.

At batch 1 a model's eager forward pass is bound by launch and Python overhead, not arithmetic:
MPCL issues about 220 operator calls for 26 MFLOP. Two remedies, usable alone or together:

* **AOTInductor** (``aoti``): the model is exported (``torch.export``) and compiled ahead of
  time by Inductor into a shared library packaged as ``.pt2`` (fused kernels, no Python at run
  time). On the CPU this is the fastest path; on CUDA it cuts the kernel count.
* **CUDA graphs** (``graph``): the whole forward pass is captured once on static input buffers
  and replayed with one launch; a call copies the inputs into the buffers, replays and returns
  the output. ``aoti-graph`` captures the AOTInductor program, ``eager-graph`` the eager model.
* ``compile``: ``torch.compile(mode="reduce-overhead")`` (Inductor with CUDA graphs on CUDA; on
  the CPU Inductor alone, with Python guards on every call).

All of them compute what the eager model in evaluation mode computes, in the same precision: the
tests compare them with it (``tests/inference/test_fastpath.py``).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: Fast-path modes per device type, fastest-first as measured (docs/benchmarks.md).
FAST_MODES = {
    "cpu": ("aoti", "compile"),
    "cuda": ("aoti-graph", "eager-graph", "compile", "aoti"),
}


def is_aoti_package(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an AOTInductor package (a ``.pt2`` zip holding compiled code)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("aotinductor" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _exported_program(wrapper: nn.Module, example: Sequence[Tensor]) -> Any:
    """``torch.export`` of ``wrapper`` with a dynamic batch dimension on every input."""
    batch = torch.export.Dim("batch", min=1)
    dynamic = (tuple({0: batch} for _ in example),)
    # A batch of one would be specialised (size-1 dimensions broadcast): trace with two rows.
    example = [x.repeat(2, *([1] * (x.dim() - 1))) if len(x) == 1 else x for x in example]
    with torch.no_grad():
        return torch.export.export(wrapper, tuple(example), dynamic_shapes=dynamic)


def compile_package(
    wrapper: nn.Module, example: Sequence[Tensor], output: str | os.PathLike[str]
) -> Path:
    """Compile ``wrapper`` with AOTInductor for the device of ``example`` into ``output`` (.pt2).

    The batch dimension stays dynamic (any batch size runs). The package is written next to
    ``output`` under a temporary name and renamed into place (atomic).

    Raises:
        ValueError: When ``output`` does not end in ``.pt2``.
    """
    output = Path(output)
    if output.suffix != ".pt2":
        raise ValueError(f"{output}: an AOTInductor package must be a .pt2 path")
    program = _exported_program(wrapper, example)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp.pt2")
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output


def load_package(path: str | os.PathLike[str]) -> Callable[..., Tensor]:
    """The callable of an AOTInductor package (it runs on the device it was compiled for)."""
    return torch._inductor.aoti_load_package(str(path))


class CUDAGraphPredictor:
    """Replays one CUDA graph of ``fn`` captured on static input buffers.

    ``fn`` runs a few times on a side stream (so that lazy initialisation and autotuning happen
    outside the capture), then once under capture. A call copies its inputs into the static
    buffers, replays the graph and returns a copy of the static output (the buffer is overwritten
    by the next call). Inputs must have the example's shapes, dtypes and device.

    Args:
        fn: The computation; it must not synchronise with the host (no ``.item()``, no
            host-to-device copies of fresh tensors) and must be deterministic in its launches.
        example: Example inputs on one CUDA device.
        warmup: Uncaptured runs before the capture.
    """

    def __init__(
        self, fn: Callable[..., Tensor], example: Sequence[Tensor], warmup: int = 3
    ) -> None:
        if not example or any(x.device.type != "cuda" for x in example):
            raise ValueError("CUDAGraphPredictor: every example input must be a CUDA tensor")
        device = example[0].device
        self.inputs = [x.detach().clone() for x in example]
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(warmup):
                fn(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.output = fn(*self.inputs)

    def __call__(self, *inputs: Tensor) -> Tensor:
        """The output of ``fn(*inputs)`` by graph replay."""
        if len(inputs) != len(self.inputs):
            raise ValueError(
                f"CUDAGraphPredictor: expected {len(self.inputs)} inputs, got {len(inputs)}"
            )
        for i, (buffer, x) in enumerate(zip(self.inputs, inputs, strict=True)):
            if x.shape != buffer.shape or x.dtype != buffer.dtype:
                raise ValueError(
                    f"CUDAGraphPredictor: input {i} has shape {tuple(x.shape)} / {x.dtype}, the "
                    f"graph was captured for {tuple(buffer.shape)} / {buffer.dtype}"
                )
            buffer.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.output.clone()


def fast_predictor(
    wrapper: nn.Module,
    example: Sequence[Tensor],
    mode: str,
    workdir: str | os.PathLike[str] | None = None,
) -> Callable[..., Tensor]:
    """A fast callable computing ``wrapper(*inputs)`` for inputs shaped like ``example``.

    Args:
        wrapper: A module in evaluation mode taking positional tensors (e.g.
            :class:`~mpcl.export.InferenceModel`), on the device of ``example``.
        example: Example inputs (their batch size is the one graphs are captured for).
        mode: One of :data:`FAST_MODES` for the device.
        workdir: Folder for the AOTInductor package (default: a temporary folder, removed
            after loading).

    Raises:
        ValueError: For a mode the device does not offer.
    """
    device = example[0].device.type
    if mode not in FAST_MODES.get(device, ()):
        raise ValueError(
            f"fast_predictor: mode {mode!r} is not offered on {device} "
            f"(choose from {list(FAST_MODES.get(device, ()))})"
        )
    wrapper = wrapper.eval()
    if mode == "compile":
        compiled = torch.compile(
            wrapper,
            mode="reduce-overhead" if device == "cuda" else "default",
            dynamic=False,
            fullgraph=True,
        )
        with torch.inference_mode():
            compiled(*example)  # compile now, not at the first timed call
        return compiled
    if mode == "eager-graph":
        return CUDAGraphPredictor(wrapper, example)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="mpcl-aoti-") as tmp:
            program = load_package(compile_package(wrapper, example, Path(tmp) / "model.pt2"))
    else:
        program = load_package(compile_package(wrapper, example, Path(workdir) / "model.pt2"))
    if mode == "aoti-graph":
        return CUDAGraphPredictor(program, example)
    return program
