"""Helpers of the report tests: tiny runs of the synthetic data set."""

from __future__ import annotations

from pathlib import Path

from mpcl.cli import build_cli

REPO = Path(__file__).resolve().parents[2]
MPCL = str(REPO / "experiments" / "synthetic" / "mpcl.yaml")
MLP = str(REPO / "experiments" / "synthetic" / "mlp.yaml")


def tiny(data: Path) -> list[str]:
    return [
        "--data.init_args.num_subjects=5",
        "--data.init_args.rows_per_clip=4",
        f"--data.init_args.root={data}",
        "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false",
        "--results.print_table=false",
    ]


def fit(config: str, root: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    args = [
        "fit",
        "--config",
        config,
        *tiny(root / "data"),
        "--test_after_fit=true",
        f"--trainer.logger.init_args.save_dir={root / 'runs'}",
        f"--trainer.logger.init_args.name={name}",
        f"--trainer.default_root_dir={root / 'runs'}",
        *extra,
    ]
    cli = build_cli(args)
    return Path(cli.trainer.log_dir)
