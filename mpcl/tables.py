"""Result tables: rows of methods, columns of the six metrics with their direction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpcl.metrics import LDL_METRICS


def metric_header() -> list[str]:
    """Column titles with arrows: ``Chebyshev ↓ ... Intersection ↑``."""
    return [f"{m.display} {'↑' if m.higher_is_better else '↓'}" for m in LDL_METRICS]


def markdown_table(
    rows: Mapping[str, Mapping[str, float]],
    stds: Mapping[str, Mapping[str, float]] | None = None,
    first_column: str = "method",
    digits: int = 4,
    extra_columns: Sequence[str] = (),
) -> str:
    """A Markdown table of metric values (``mean ± std`` where ``stds`` are given).

    Args:
        rows: Row label -> metric name (``kl``, ``cosine``, ...) -> value. Extra keys named in
            ``extra_columns`` are printed after the metrics.
        stds: Optional row label -> metric name -> standard deviation.
        first_column: Title of the label column.
        digits: Decimal places.
        extra_columns: Further keys of ``rows`` to print as columns, as they are.
    """
    header = [first_column, *metric_header(), *extra_columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, values in rows.items():
        cells = [label]
        for metric in LDL_METRICS:
            value = values.get(metric.name)
            if value is None:
                cells.append("-")
                continue
            cell = f"{value:.{digits}f}"
            if stds is not None and metric.name in stds.get(label, {}):
                cell += f" ± {stds[label][metric.name]:.{digits}f}"
            cells.append(cell)
        cells += [str(values.get(col, "")) for col in extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
