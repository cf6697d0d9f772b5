r"""``python -m mpcl.multisubject``: train every subject's model of a protocol at once.

Examples::

    python -m mpcl.multisubject --config experiments/synthetic/mlp.yaml --protocol random-window
    python -m mpcl.multisubject --config experiments/synthetic/mpcl.yaml --protocol clip-holdout \\
        --output runs/many/mpcl -- --trainer.max_epochs=10 --data.init_args.num_subjects=73

Arguments after ``--`` go to the LightningCLI parser, as for every fold of ``mpcl-protocol run``.
The output folder has the protocol runner's layout (``folds.csv``, ``summary.md``, one
``fold-XX-seed-S/`` per subject), so ``mpcl-protocol compare`` reads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules.protocols import DEFAULT_SEED, SUBJECT_DEPENDENT
from mpcl.multisubject.run import ManySubjectsRun
from mpcl.runner.cli import default_output, split_overrides


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mpcl.multisubject``."""
    parser = argparse.ArgumentParser(
        prog="python -m mpcl.multisubject", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", action="append", required=True, help="config (repeatable)")
    parser.add_argument("--protocol", required=True, choices=sorted(SUBJECT_DEPENDENT))
    parser.add_argument(
        "--output", help="run folder (default runs/many-subjects/<protocol>/<name>)"
    )
    parser.add_argument("--name", help="row label of the model in the tables")
    parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED])
    parser.add_argument("--folds", type=int, nargs="+", help="only these folds (subject ranks)")
    parser.add_argument(
        "--max-group", type=int, help="most models per vectorised call (bounds memory)"
    )
    parser.add_argument("--save-last", action="store_true", help="also write last.ckpt per subject")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the vectorised forward and loss through torch.compile",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; arguments after ``--`` are LightningCLI overrides."""
    own, overrides = split_overrides(argv)
    args = build_parser().parse_args(own)
    output = (
        Path(args.output)
        if args.output
        else default_output(args.config, args.protocol, args.name, kind="many-subjects")
    )
    ManySubjectsRun(
        configs=args.config,
        protocol=args.protocol,
        output_dir=output,
        seeds=args.seeds,
        folds=args.folds,
        overrides=overrides,
        max_group=args.max_group,
        save_last=args.save_last,
        name=args.name,
        compile=args.compile,
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
