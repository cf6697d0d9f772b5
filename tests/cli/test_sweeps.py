"""W&B sweep files: valid, and every command the agent builds from them is a valid ``mpcl fit``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from mpcl.cli import build_cli
from mpcl.metrics import LDL_METRICS
from mpcl.sweeps import (
    SweepConfigError,
    agent_command,
    example_assignments,
    load_sweep,
    mpcl_arguments,
    validate_sweep,
)

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
SWEEP_IDS = [p.name for p in SWEEPS]
TINY_SYNTHETIC = [
    "--data.init_args.num_subjects=4",
    "--data.init_args.rows_per_clip=4",
    "--data.init_args.num_folds=2",
]


@pytest.fixture(scope="module")
def logged_metrics(tmp_path_factory) -> set[str]:
    """Keys MPCL really logs in a (one-batch) fit: what a sweep's metric can name."""
    root = tmp_path_factory.mktemp("logged")
    # Module scope runs before conftest's per-test sys.argv patch: hide pytest's arguments here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["mpcl"])
        cli = _fit_once(root)
    return set(cli.trainer.callback_metrics)


def _fit_once(root: Path):
    return build_cli(
        [
            "fit",
            "--config",
            str(REPO / "experiments" / "synthetic" / "mpcl.yaml"),
            *TINY_SYNTHETIC,
            f"--data.init_args.root={root / 'data'}",
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root}",
            "--trainer.fast_dev_run=true",
            "--trainer.enable_progress_bar=false",
        ]
    )


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: no {part!r} in printed config"
        node = node[part]
    return node


def _same(got, expected) -> bool:
    if isinstance(expected, float):
        return math.isclose(float(got), expected, rel_tol=1e-12)
    return got == expected


def test_required_sweeps_exist():
    swept = set()
    for path in SWEEPS:
        swept |= set(yaml.safe_load(path.read_text())["parameters"])
    required = {
        "model.init_args.optimizer.init_args.lr",
        "model.init_args.lambda_prd",
        "model.init_args.lambda_co",
        "model.init_args.prototypes_per_emotion",
        "model.init_args.scales",
    }
    assert required <= swept, f"no sweep file sweeps {sorted(required - swept)}"


@pytest.mark.parametrize("path", SWEEPS, ids=SWEEP_IDS)
def test_sweep_file_is_valid(path, logged_metrics):
    config = load_sweep(path, metric_names=logged_metrics)
    metric = config["metric"]["name"]
    assert metric.startswith("val/"), "sweeps select on validation rows, never on the test split"
    higher = {f"val/{m.name}": m.higher_is_better for m in LDL_METRICS}
    expected_goal = "maximize" if higher.get(metric, False) else "minimize"
    assert config["metric"]["goal"] == expected_goal
    assert (REPO / config["program"]).is_file()


@pytest.mark.parametrize("path", SWEEPS, ids=SWEEP_IDS)
def test_agent_commands_parse_and_set_the_swept_values(path, monkeypatch, capsys):
    config = load_sweep(path)
    monkeypatch.chdir(REPO)  # the agent runs from the repository root: config paths are relative
    for values in example_assignments(config):
        command = agent_command(config, values)
        assert command[:2] == ["/usr/bin/env", "python"]
        args = mpcl_arguments(command)
        assert args[0] == "fit"
        with pytest.raises(SystemExit) as exit_info:
            build_cli([*args, "--print_config"])
        assert exit_info.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        for key, value in values.items():
            got = _lookup(printed, key)
            assert _same(got, value), f"{path.name}: {key}={value!r} printed as {got!r}"
        assert printed["trainer"]["logger"]["class_path"].endswith("WandbLogger")


def test_expansion_matches_the_wandb_agent():
    """``${args}`` is formatted exactly as wandb's agent does it (lists, floats, booleans)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    values = {"model.init_args.scales": [1, 2], "a.lr": 1.5e-05, "a.flag": True, "a.k": 8}
    config = {"program": "p.py", "command": ["${env}", "${interpreter}", "${program}", "${args}"]}
    expected = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    command = agent_command(config, values)
    assert command == ["/usr/bin/env", "python", "p.py", *expected["args"]]
    assert "--model.init_args.scales=[1, 2]" in command


def _good() -> dict:
    return {
        "program": "mpcl/__main__.py",
        "method": "bayes",
        "metric": {"name": "val/kl", "goal": "minimize"},
        "parameters": {"x.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}},
        "command": ["${env}", "${interpreter}", "-m", "mpcl", "fit", "${args}"],
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.pop("program"), "program"),
        (lambda c: c.update(method="hyperband"), "method"),
        (lambda c: c["metric"].update(goal="lower"), "metric.goal"),
        (lambda c: c["metric"].update(name="val/acc"), "metric.name"),
        (lambda c: c["parameters"]["x.lr"].update(min="1e-4"), "parameters.x.lr.min/max"),
        (lambda c: c["parameters"]["x.lr"].update(min=0.1), "parameters.x.lr.min/max"),
        (
            lambda c: c["parameters"]["x.lr"].update(distribution="zipf"),
            "parameters.x.lr.distribution",
        ),
        (lambda c: c.update(method="grid"), "parameters.x.lr"),
        (lambda c: c["parameters"].update(y={"values": []}), "parameters.y.values"),
        (lambda c: c["command"].remove("${args}"), "command"),
    ],
)
def test_validator_rejects_broken_sweeps(change, field):
    config = _good()
    validate_sweep(config, "good.yaml", metric_names={"val/kl"})
    change(config)
    with pytest.raises(SweepConfigError, match=re.escape(f"bad.yaml: {field}:")):
        validate_sweep(config, "bad.yaml", metric_names={"val/kl"})


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=SWEEP_IDS)
def test_agent_commands_train(path, in_tmp_cwd):
    """Every swept value builds and trains a model (one batch), on tiny synthetic data."""
    config = load_sweep(path)
    for values in example_assignments(config):
        args = mpcl_arguments(agent_command(config, values))
        # Same command on the synthetic twin of the DMER config, without W&B.
        args = [
            a.replace("experiments/dmer/", str(REPO / "experiments" / "synthetic") + "/")
            for a in args
        ]
        args = [
            a.replace("experiments/logging/", str(REPO / "experiments" / "logging") + "/")
            for a in args
        ]
        cli = build_cli(
            [
                *args,
                *TINY_SYNTHETIC,
                f"--data.init_args.root={in_tmp_cwd / 'data'}",
                "--trainer.logger=false",
                "--trainer.fast_dev_run=true",
                "--trainer.enable_progress_bar=false",
            ]
        )
        assert cli.trainer.state.finished and cli.trainer.global_step == 1
