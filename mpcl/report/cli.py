r"""``mpcl report``: the report of a run, a protocol run, or a comparison of several.

Examples::

    mpcl report runs/demo                        # the newest tested version of runs/demo
    mpcl report runs/protocol/kfold/synthetic-mpcl
    mpcl report runs/baselines/synthetic-kfold/mpcl runs/baselines/synthetic-kfold/mlp \\
        --reference MPCLModule --output runs/reports/mpcl-vs-mlp

Writes ``report.html`` (self-contained), every figure as PNG and PDF (``--svg`` adds SVG) with
its data as CSV, and for comparisons the table as Markdown and LaTeX; prints the page's path.
"""

from __future__ import annotations

import argparse
import sys

from mpcl.report.build import build_report


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mpcl report``."""
    parser = argparse.ArgumentParser(
        prog="mpcl report", description=__doc__.split("\n")[0].strip('`r" ')
    )
    parser.add_argument("paths", nargs="+", help="run folders (several: a comparison)")
    parser.add_argument("--output", help="report folder (default <run>/report)")
    parser.add_argument("--reference", help="comparison row tested against the others")
    parser.add_argument("--svg", action="store_true", help="also write every figure as SVG")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mpcl report``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    formats = ("png", "pdf", "svg") if args.svg else ("png", "pdf")
    try:
        path = build_report(args.paths, args.output, args.reference, formats)
    except (FileNotFoundError, ValueError) as error:
        print(f"mpcl report: {error}", file=sys.stderr)
        return 2
    print(f"Report: {path.resolve()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
