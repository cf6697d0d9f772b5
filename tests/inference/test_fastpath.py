"""The fast single-window paths compute what the eager model computes.

CPU: the AOTInductor package (``mpcl.fastpath``, ``python -m mpcl.export --compile cpu``). CUDA
(when a GPU is present): CUDA-graph replay of the eager model and of the AOTInductor program,
and ``torch.compile(mode="reduce-overhead")``.
"""

from __future__ import annotations

import pytest
import torch

from datamodules.synthetic import SyntheticDMERDataModule
from mpcl.export import InferenceModel, load_exported
from mpcl.export import main as export_main
from mpcl.fastpath import CUDAGraphPredictor, fast_predictor, is_aoti_package
from mpcl.models import MLPModule, MPCLModule

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _metadata():
    return SyntheticDMERDataModule(num_subjects=2, rows_per_clip=1, root="/nonexistent").metadata


def _wrapper(kind: str) -> InferenceModel:
    torch.manual_seed(0)
    metadata = _metadata()
    if kind == "mlp":
        model = MLPModule(metadata, hidden_dims=[16])
    else:
        model = MPCLModule(metadata, hidden_dim=16, token_groups={"face": 3})
    return InferenceModel(model.eval())


def _check(fast, wrapper: InferenceModel, inputs, atol: float) -> None:
    with torch.inference_mode():
        expected = wrapper(*inputs)
        got = fast(*inputs)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)


def test_aoti_package_on_cpu_equals_eager(tmp_path):
    wrapper = _wrapper("mlp")
    fast = fast_predictor(wrapper, wrapper.example_inputs(1), "aoti", workdir=tmp_path)
    assert is_aoti_package(tmp_path / "model.pt2")
    for batch_size in (1, 5):  # the batch dimension stays dynamic
        _check(fast, wrapper, wrapper.example_inputs(batch_size, seed=3), atol=1e-6)


def test_export_compile_cpu_writes_a_package_that_reproduces_the_checkpoint(
    tmp_path, trained, capsys
):
    ckpt, _ = trained["mlp"]
    output = tmp_path / "model.pt2"
    export_main(["--ckpt", str(ckpt), "--output", str(output), "--compile", "cpu"])
    assert is_aoti_package(output)
    assert "max abs difference" in capsys.readouterr().out
    plain = tmp_path / "plain.pt2"
    export_main(["--ckpt", str(ckpt), "--output", str(plain)])
    assert not is_aoti_package(plain)
    inputs = InferenceModel(MLPModule(_metadata(), hidden_dims=[16])).example_inputs(3, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(
            load_exported(output)(*inputs), load_exported(plain)(*inputs), atol=1e-6, rtol=0
        )


def test_modes_a_device_does_not_offer_are_refused():
    wrapper = _wrapper("mlp")
    with pytest.raises(ValueError, match="not offered on cpu"):
        fast_predictor(wrapper, wrapper.example_inputs(1), "eager-graph")
    with pytest.raises(ValueError, match="CUDA tensor"):
        CUDAGraphPredictor(wrapper, wrapper.example_inputs(1))


@CUDA
@pytest.mark.parametrize("mode", ["eager-graph", "aoti-graph", "compile"])
def test_cuda_fast_paths_equal_eager(mode, tmp_path):
    wrapper = _wrapper("mpcl").cuda()
    example = tuple(x.cuda() for x in wrapper.example_inputs(1))
    fast = fast_predictor(wrapper, example, mode, workdir=tmp_path)
    for seed in (5, 6):  # new inputs go through the captured buffers
        inputs = tuple(x.cuda() for x in wrapper.example_inputs(1, seed=seed))
        _check(fast, wrapper, inputs, atol=1e-5)


@CUDA
def test_cuda_graph_refuses_other_shapes():
    wrapper = _wrapper("mlp").cuda()
    fast = CUDAGraphPredictor(wrapper, tuple(x.cuda() for x in wrapper.example_inputs(1)))
    with pytest.raises(ValueError, match="captured for"):
        fast(*(x.cuda() for x in wrapper.example_inputs(2)))
