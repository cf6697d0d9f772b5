r"""``mpcl-protocol``: run configurations over every fold of a protocol and compare them.

Examples::

    mpcl-protocol run --config experiments/synthetic/mlp.yaml --protocol kfold
    mpcl-protocol run --config experiments/synthetic/mpcl.yaml \\
        --config experiments/ablations/no_prd.yaml --protocol kfold --name no_prd
    mpcl-protocol compare runs/protocol/kfold/mpcl runs/protocol/kfold/no_prd --reference mpcl

Arguments after ``--`` go to every fold's ``mpcl fit`` (e.g. ``-- --trainer.max_epochs=5``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules.protocols import DEFAULT_SEED
from mpcl.errors import pop_debug_flag, report_errors
from mpcl.io import atomic_write_text
from mpcl.runner.aggregate import comparison_table, per_fold_means, read_folds
from mpcl.runner.run import ProtocolRun


def default_output(
    configs: list[str], protocol: str, name: str | None, kind: str = "protocol"
) -> Path:
    """``runs/<kind>/<protocol>/<name or dataset-model>`` for the given configs."""
    label = name or "-".join(Path(configs[0]).with_suffix("").parts[-2:])
    return Path("runs") / kind / protocol / label


def _run(args: argparse.Namespace, overrides: list[str]) -> int:
    output = (
        Path(args.output) if args.output else default_output(args.config, args.protocol, args.name)
    )
    runner = ProtocolRun(
        configs=args.config,
        protocol=args.protocol,
        output_dir=output,
        seeds=args.seeds,
        folds=args.folds,
        overrides=overrides,
        isolate=args.isolate,
        name=args.name,
    )
    frame = runner.run()
    print(f"\n{runner.write_summary(frame)}\n\nResults: {output}/summary.md", flush=True)
    return 0


def _compare(args: argparse.Namespace) -> int:
    runs = {}
    for run_dir in args.runs:
        frame = read_folds(run_dir)
        for method in dict.fromkeys(frame["method"]):
            label = method
            if method in ("train-mean", "uniform"):
                if method in runs:
                    continue  # the trivial baselines are the same in every run of one protocol
            elif method in runs:
                label = Path(run_dir).name  # two runs of one model class: name rows by folder
            runs[label] = per_fold_means(frame, method)
    if args.reference is not None and args.reference not in runs:
        raise SystemExit(f"--reference {args.reference!r} is not a row; rows: {list(runs)}")
    text, long_form = comparison_table(runs, reference=args.reference)
    print(text)
    if args.output:
        out = Path(args.output)
        atomic_write_text(out.with_suffix(".md"), text + "\n")
        atomic_write_text(out.with_suffix(".csv"), long_form.to_csv(index=False))
    return 0


def _models(args: argparse.Namespace) -> dict[str, list[str]]:
    """``name=config[+overlay...]`` pairs (or bare names of ``experiments/<dataset>/``)."""
    models = {}
    for spec in args.models:
        name, _, configs = spec.partition("=")
        if not configs:
            configs = f"experiments/{args.dataset}/{name}.yaml"
        models[name] = configs.split("+")
    return models


def _robustness(args: argparse.Namespace, overrides: list[str]) -> int:
    from mpcl.runner.robustness import DataSizeRun, RobustnessRun

    output = Path(args.output or Path("runs") / args.command / args.dataset / args.protocol)
    common = dict(
        models=_models(args),
        protocol=args.protocol,
        output_dir=output,
        seeds=args.seeds,
        folds=args.folds,
        overrides=overrides,
        reference=args.reference,
    )
    if args.command == "robustness":
        run = RobustnessRun(**common, drop_rates=args.drop_rates, snrs_db=args.snrs)
        print(f"\n{run.run()}\n\nResults: {output}/robustness.md, {output}/degradation.png")
    else:
        run = DataSizeRun(**common, sizes=args.sizes)
        print(f"\n{run.run()}\n\nResults: {output}/datasize.md, {output}/datasize.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mpcl-protocol``."""
    parser = argparse.ArgumentParser(prog="mpcl-protocol", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a configuration over the folds of a protocol")
    run.add_argument("--config", action="append", required=True, help="config file (repeatable)")
    run.add_argument("--protocol", required=True, help="kfold, loso, random-window, temporal, ...")
    run.add_argument("--output", help="run folder (default runs/protocol/<protocol>/<name>)")
    run.add_argument("--name", help="row label of this configuration")
    run.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED])
    run.add_argument("--folds", type=int, nargs="+", help="only these folds")
    run.add_argument("--isolate", action="store_true", help="one Python process per fold")

    for command, text in (
        ("robustness", "train models once per fold, test each under missing/noisy modalities"),
        ("datasize", "train models on fewer subjects / windows per clip"),
    ):
        cmd = sub.add_parser(command, help=text)
        cmd.add_argument(
            "--models",
            nargs="+",
            default=["mpcl", "mlp"],
            help="name or name=config.yaml[+overlay.yaml] (bare names: experiments/<dataset>/)",
        )
        cmd.add_argument("--dataset", default="synthetic", help="folder under experiments/")
        cmd.add_argument("--protocol", default="kfold")
        cmd.add_argument(
            "--output", help="run folder (default runs/<command>/<dataset>/<protocol>)"
        )
        cmd.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED])
        cmd.add_argument("--folds", type=int, nargs="+", help="only these folds")
        cmd.add_argument("--reference", default="mpcl", help="row tested against the others")
        if command == "robustness":
            cmd.add_argument("--drop-rates", type=float, nargs="+", default=[0.1, 0.3, 0.5])
            cmd.add_argument("--snrs", type=float, nargs="+", default=[10.0, 0.0])
        else:
            cmd.add_argument(
                "--sizes",
                type=float,
                nargs="+",
                default=[2, 4, 8, 0],
                help="training subjects (subject-independent) or window fractions "
                "(subject-dependent); 0 = all",
            )

    compare = sub.add_parser("compare", help="put finished runs side by side")
    compare.add_argument("runs", nargs="+", help="run folders")
    compare.add_argument("--reference", help="row to test the others against (Wilcoxon)")
    compare.add_argument("--output", help="write <output>.md and <output>.csv")
    return parser


def split_overrides(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """``(own arguments, LightningCLI overrides)``: the overrides are what follows ``--``.

    Args:
        argv: The command line without the program name; ``None`` reads ``sys.argv``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    """Entry point; arguments after ``--`` are passed to every fold's ``mpcl fit``."""
    own, overrides = split_overrides(argv)
    own, debug = pop_debug_flag(own)
    args = build_parser().parse_args(own)
    if args.command == "run":
        return int(report_errors("mpcl-protocol", lambda: _run(args, overrides), debug))
    if args.command in ("robustness", "datasize"):
        return int(report_errors("mpcl-protocol", lambda: _robustness(args, overrides), debug))
    return int(report_errors("mpcl-protocol", lambda: _compare(args), debug))


if __name__ == "__main__":
    sys.exit(main())
