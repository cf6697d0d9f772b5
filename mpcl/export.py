"""Export a trained checkpoint as a standalone inference model (``torch.export`` or TorchScript).

``python -m mpcl.export --ckpt runs/.../best-012.ckpt --output model.pt2`` writes a model that
needs only ``torch`` to run: its inputs are the data set's modality tensors in metadata order
(DMER: ``eeg [B, 18, 5], gsr [B, 28], ppg [B, 27], face [B, 768]``), its output the predicted
distributions ``[B, C]`` in evaluation mode. When the checkpoint carries the datamodule's
standardisation statistics (every checkpoint written by ``mpcl fit`` does), they are built in,
so the exported model takes *raw* features, as they are stored in the feature files;
``--no-standardize`` exports the bare network, which takes standardised features.

Formats: ``.pt2`` is a ``torch.export`` program (load with ``torch.export.load(path).module()``),
``.pt`` a frozen TorchScript trace (``torch.jit.load(path)``). ``--compile cpu|cuda`` with a
``.pt2`` path writes an AOTInductor package instead: the program compiled ahead of time for that
device (``mpcl.fastpath``; the fastest for single windows; load with ``load_exported``).
ONNX is not offered: the ``onnx`` package is not part of this project's dependencies.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mpcl.checkpoints import load_checkpoint, model_class
from mpcl.errors import pop_debug_flag, report_errors
from mpcl.fastpath import compile_package, is_aoti_package, load_package
from mpcl.models.base import EmotionDistributionModule

EXPORT_SUFFIXES = {".pt2": "export", ".pt": "torchscript"}


class InferenceModel(nn.Module):
    r"""A model in evaluation mode behind positional modality inputs, optionally standardising.

    ``forward(x_1, ..., x_M) = model({m: (x_m - mean_m) / std_m})`` with the training rows'
    statistics (or the inputs unchanged without statistics).

    Args:
        model: The trained module.
        statistics: Per modality the float64 ``(mean, std)`` of the training rows, or ``None``.
    """

    def __init__(
        self,
        model: EmotionDistributionModule,
        statistics: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.modalities = tuple(model.metadata.modalities)
        self.standardize = statistics is not None
        for name in self.modalities:
            if statistics is None:
                continue
            if name not in statistics:
                raise ValueError(
                    f"InferenceModel: the standardisation statistics have no entry for modality "
                    f"{name!r} (have {sorted(statistics)})"
                )
            mean, std = statistics[name]
            self.register_buffer(f"mean_{name}", mean.to(torch.float64).clone())
            self.register_buffer(f"std_{name}", std.to(torch.float64).clone())

    def example_inputs(self, batch_size: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
        """Random inputs of the expected shapes (for tracing and tests)."""
        generator = torch.Generator().manual_seed(seed)
        shapes = self.model.metadata.modality_shapes
        return tuple(
            torch.randn(batch_size, *shapes[m], generator=generator) for m in self.modalities
        )

    def forward(self, *features: Tensor) -> Tensor:
        """Distributions ``[B, C]`` of the modality tensors, in :attr:`modalities` order."""
        batch = {}
        for name, x in zip(self.modalities, features, strict=True):
            if self.standardize:
                # The same float64 arithmetic that standardised the training rows.
                mean, std = getattr(self, f"mean_{name}"), getattr(self, f"std_{name}")
                x = ((x.to(torch.float64) - mean) / std).to(torch.float32)
            batch[name] = x
        preds, _ = self.model(batch)
        return preds


def _model_class(path: str, source: str = "--model-class") -> type[EmotionDistributionModule]:
    # Checked against the project's model classes before anything is imported.
    cls = model_class(path, source)
    if not (isinstance(cls, type) and issubclass(cls, EmotionDistributionModule)):
        raise TypeError(f"{path} is not an EmotionDistributionModule subclass")
    return cls


def load_checkpoint_model(
    ckpt_path: str | os.PathLike[str], class_path: str | None = None
) -> tuple[EmotionDistributionModule, dict[str, Any]]:
    """The model of a checkpoint (in evaluation mode, on the CPU) and the raw checkpoint.

    The class is ``class_path`` or the checkpoint's own ``hyper_parameters._class_path``
    (LightningCLI records it).
    """
    checkpoint = load_checkpoint(ckpt_path)  # weights-only, local, class path checked
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = class_path or hparams.get("_class_path")
    if not class_path:
        raise ValueError(
            f"{ckpt_path}: hyper_parameters has no '_class_path'; pass --model-class "
            "(e.g. mpcl.models.MLPModule)"
        )
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    model = _model_class(class_path, os.fspath(ckpt_path))(**init_args)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def checkpoint_statistics(checkpoint: Mapping[str, Any]) -> dict[str, tuple[Tensor, Tensor]] | None:
    """The datamodule's standardisation statistics saved in a checkpoint, if any."""
    for value in checkpoint.values():
        if isinstance(value, Mapping) and "feature_mean" in value and "feature_std" in value:
            means, stds = value["feature_mean"], value["feature_std"]
            return {k: (means[k], stds[k]) for k in means}
    return None


def checkpoint_subject_standardized(checkpoint: Mapping[str, Any]) -> bool:
    """Whether the checkpoint's datamodule z-scored every subject's rows before standardising."""
    for value in checkpoint.values():
        if isinstance(value, Mapping) and "feature_mean" in value:
            return bool(value.get("subject_standardize", False))
    return False


def export_model(
    wrapper: InferenceModel, output: str | os.PathLike[str], batch_size: int = 2
) -> Path:
    """Write ``wrapper`` as ``.pt2`` (``torch.export``, dynamic batch size) or ``.pt`` (trace).

    The file is written to memory first and renamed into place (atomic).
    """
    output = Path(output)
    kind = EXPORT_SUFFIXES.get(output.suffix)
    if kind is None:
        raise ValueError(
            f"--output {output}: expected a .pt2 (torch.export) or .pt (TorchScript) path"
        )
    example = wrapper.example_inputs(batch_size)
    buffer = io.BytesIO()
    with torch.no_grad():
        if kind == "export":
            batch = torch.export.Dim("batch", min=1)
            # One entry for the *features varargs: a tuple of per-input specs.
            dynamic = (tuple({0: batch} for _ in example),)
            program = torch.export.export(wrapper, example, dynamic_shapes=dynamic)
            torch.export.save(program, buffer)
        else:
            # Lightning's `trainer` property raises outside a Trainer unless it is told that
            # TorchScript is inspecting the module (as LightningModule.to_torchscript does).
            wrapper.model._jit_is_scripting = True
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # TorchScript's deprecation notice
                    traced = torch.jit.trace(wrapper.eval(), example)
                    # Freezing inlines the weights as constants and folds what depends on them
                    # alone: about half the single-window latency of the plain trace on CPU.
                    torch.jit.save(torch.jit.freeze(traced), buffer)
            finally:
                wrapper.model._jit_is_scripting = False
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output


def load_exported(path: str | os.PathLike[str]) -> Any:
    """A callable of an exported file (``.pt2`` or ``.pt``)."""
    path = Path(path)
    if path.suffix == ".pt2" and is_aoti_package(path):
        return load_package(path)
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mpcl.export``."""
    parser = argparse.ArgumentParser(
        prog="python -m mpcl.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by mpcl fit")
    parser.add_argument("--output", required=True, help="model.pt2 (torch.export) or model.pt")
    parser.add_argument("--model-class", help="model class path (default: from the checkpoint)")
    parser.add_argument(
        "--no-standardize",
        action="store_true",
        help="export the bare network (inputs already standardised)",
    )
    parser.add_argument(
        "--compile",
        choices=("cpu", "cuda"),
        help="with a .pt2 output: compile ahead of time (AOTInductor) for this device",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Export a checkpoint and check the exported model against it on random inputs."""
    argv, debug = pop_debug_flag(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    return int(report_errors("mpcl.export", lambda: _export(args), debug))


def _export(args: argparse.Namespace) -> int:
    model, checkpoint = load_checkpoint_model(args.ckpt, args.model_class)
    statistics = None if args.no_standardize else checkpoint_statistics(checkpoint)
    wrapper = InferenceModel(model, statistics)
    example = wrapper.example_inputs(5, seed=1)
    if args.compile:
        device = torch.device(args.compile)
        wrapper = wrapper.to(device)
        example = tuple(x.to(device) for x in example)
        trace = tuple(x.to(device) for x in wrapper.example_inputs(2))
        path = compile_package(wrapper, trace, args.output)
    else:
        path = export_model(wrapper, args.output)
    with torch.no_grad():
        error = (load_exported(path)(*example) - wrapper(*example)).abs().max().item()
    inputs = ", ".join(f"{m} {list(model.metadata.modality_shapes[m])}" for m in wrapper.modalities)
    if checkpoint_subject_standardized(checkpoint):
        # The per-subject statistics need a subject's whole recording: the caller's job.
        inputs += (
            "; trained with subject_standardize: z-score each subject's rows first "
            "(datamodules.subject_norm.standardize_per_subject)"
        )
    print(
        f"Exported {type(model).__name__} to {path}\n  inputs: {inputs} (batch first; "
        f"{'raw features, standardisation built in' if statistics else 'standardised features'})"
        f"\n  output: distributions over {list(model.metadata.emotion_names)}\n  max abs "
        f"difference to the checkpoint on random inputs: {error:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
