"""Exported models (torch.export .pt2, TorchScript .pt) reproduce their checkpoint's predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from inference_helpers import predict, raw_rows

from datamodules.dmer import DMER_EMOTIONS
from mpcl.export import (
    InferenceModel,
    checkpoint_statistics,
    load_checkpoint_model,
    load_exported,
    main,
)


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
@pytest.mark.parametrize("model", ["mlp", "mpcl"])
def test_exported_model_reproduces_the_checkpoint(tmp_path, trained, model, suffix, capsys):
    ckpt, _ = trained[model]
    output = tmp_path / f"model{suffix}"
    assert main(["--ckpt", str(ckpt), "--output", str(output)]) == 0
    assert "raw features, standardisation built in" in capsys.readouterr().out
    exported = load_exported(output)

    module, checkpoint = load_checkpoint_model(ckpt)
    stats = checkpoint_statistics(checkpoint)
    generator = torch.Generator().manual_seed(3)
    shapes = module.metadata.modality_shapes
    for batch_size in (1, 7):  # other sizes than the export's example
        raw = {m: 3.0 * torch.randn(batch_size, *shapes[m], generator=generator) for m in shapes}
        standardised = {
            m: ((x.double() - stats[m][0]) / stats[m][1]).float() for m, x in raw.items()
        }
        with torch.no_grad():
            expected = module(standardised)[0]
            got = exported(*(raw[m] for m in module.metadata.modalities))
        assert got.shape == (batch_size, len(DMER_EMOTIONS))
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)


def test_bare_export_takes_standardised_features(tmp_path, trained):
    ckpt, _ = trained["mpcl"]
    output = tmp_path / "bare.pt2"
    main(["--ckpt", str(ckpt), "--output", str(output), "--no-standardize"])
    module, _ = load_checkpoint_model(ckpt)
    inputs = InferenceModel(module).example_inputs(4, seed=5)
    with torch.no_grad():
        expected = module(dict(zip(module.metadata.modalities, inputs, strict=True)))[0]
        got = load_exported(output)(*inputs)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)


def test_exported_model_equals_mpcl_predict_on_the_files(tmp_path, trained, predict_dir):
    ckpt, args = trained["mlp"]
    csv = tmp_path / "predictions.csv"
    predict(ckpt, args, predict_dir, csv, root=tmp_path / "none")
    main(["--ckpt", str(ckpt), "--output", str(tmp_path / "model.pt2")])
    raw, _, _ = raw_rows(predict_dir)
    module, _ = load_checkpoint_model(ckpt)
    with torch.no_grad():
        got = load_exported(tmp_path / "model.pt2")(*(raw[m] for m in module.metadata.modalities))
    written = pd.read_csv(csv)[list(DMER_EMOTIONS)].to_numpy()
    assert np.allclose(got.double().numpy(), written, atol=1e-6)


def test_bad_output_suffix(tmp_path, trained, capsys):
    args = ["--ckpt", str(trained["mlp"][0]), "--output", str(tmp_path / "model.onnx")]
    assert main(args) == 1  # one line on stderr (mpcl.errors); the traceback with --debug
    assert "expected a .pt2" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"\.pt2.*\.pt"):
        main([*args, "--debug"])
