"""W&B sweep files: checking them, and the command a ``wandb agent`` builds from them.

A sweep file (``experiments/sweeps/*.yaml``) names the hyper-parameters by their LightningCLI
key (``model.init_args.lambda_prd``) and gives a ``command`` such as::

    command: [${env}, ${interpreter}, -m, mpcl, fit, --config, experiments/dmer/mpcl.yaml,
              --config, experiments/logging/wandb.yaml, ${args}]

For every run, the agent replaces ``${env}`` with ``/usr/bin/env``, ``${interpreter}`` with
``python`` (the first on ``PATH``), ``${program}`` with the file's ``program`` and ``${args}``
with one ``--<key>=<value>`` per parameter, the value formatted by Python's ``str`` (a list
becomes ``[1, 2]``, a boolean ``True``). :func:`agent_command` rebuilds that list, so a test can
hand it to ``mpcl fit --print_config`` and see every value land where it should.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import yaml

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
#: W&B's parameter distributions; those with bounds take ``min`` and ``max``.
BOUNDED = {
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
}
DISTRIBUTIONS = BOUNDED | {
    "constant",
    "categorical",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
}
#: What the agent substitutes for the macros that need no run (the rest depend on the values).
AGENT_MACROS = {"env": ["/usr/bin/env"], "interpreter": ["python"]}
REQUIRED_KEYS = ("program", "method", "parameters", "command")


class SweepConfigError(ValueError):
    """A sweep file that W&B or ``mpcl fit`` would reject."""


def load_sweep(path: str | Path, metric_names: Iterable[str] | None = None) -> dict[str, Any]:
    """Read and check a sweep file; see :func:`validate_sweep`."""
    path = Path(path)
    config = yaml.safe_load(path.read_text())
    validate_sweep(config, source=str(path), metric_names=metric_names)
    return config


def _fail(source: str, field: str, expected: str, got: Any) -> SweepConfigError:
    return SweepConfigError(f"{source}: {field}: expected {expected}, got {got!r}")


def _check_parameter(source: str, name: str, spec: Any, method: str) -> None:
    field = f"parameters.{name}"
    if not isinstance(spec, Mapping):
        raise _fail(source, field, "a mapping (value / values / distribution)", spec)
    kinds = [k for k in ("value", "values", "distribution", "min") if k in spec]
    if "parameters" in spec:
        raise _fail(source, field, "a flat parameter (nested parameters are not mapped)", spec)
    if "value" in spec and len(kinds) > 1:
        raise _fail(source, field, "either value or values or a distribution", sorted(spec))
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise _fail(source, f"{field}.values", "a non-empty list", values)
        if any(v is None for v in values):
            raise _fail(source, f"{field}.values", "no null (the agent cannot pass it)", values)
        probabilities = spec.get("probabilities")
        if probabilities is not None and len(probabilities) != len(values):
            raise _fail(source, f"{field}.probabilities", f"{len(values)} numbers", probabilities)
        return
    if "value" in spec:
        if spec["value"] is None:
            raise _fail(source, f"{field}.value", "a value (the agent cannot pass null)", None)
        return
    if method == "grid":
        raise _fail(source, field, "value or values (grid search enumerates them)", spec)
    distribution = spec.get("distribution")
    if distribution is None and "min" not in spec:
        raise _fail(source, field, "value, values, distribution or min/max", sorted(spec))
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise _fail(
            source, f"{field}.distribution", f"one of {sorted(DISTRIBUTIONS)}", distribution
        )
    if distribution is None or distribution in BOUNDED:
        low, high = spec.get("min"), spec.get("max")
        # YAML reads 1e-4 (no dot) as a string: W&B would then reject the bound.
        numbers = all(isinstance(b, Real) and not isinstance(b, bool) for b in (low, high))
        if not numbers or not low < high:
            raise _fail(source, f"{field}.min/max", "two numbers with min < max", (low, high))
        if distribution and distribution.endswith("log_uniform_values") and low <= 0:
            raise _fail(source, f"{field}.min", "a positive number (log scale)", low)


def validate_sweep(
    config: Any, source: str = "<sweep>", metric_names: Iterable[str] | None = None
) -> None:
    """Check a sweep config against W&B's documented keys and this project's conventions.

    Checked: the required keys, search method, metric goal, parameter forms (value, values,
    distribution with numeric bounds) and an ``mpcl fit`` command holding ``${args}``. (W&B's
    own validator needs its optional ``sweeps`` package, which the project does not install.)

    Args:
        config: The loaded sweep file.
        source: Name used in error messages (the file path).
        metric_names: Metrics the model logs; when given, ``metric.name`` must be one of them.

    Raises:
        SweepConfigError: Naming the file, the field and what was expected.
    """
    if not isinstance(config, Mapping):
        raise _fail(source, "<top level>", "a mapping", type(config).__name__)
    for key in REQUIRED_KEYS:
        if key not in config:
            raise _fail(source, key, "a value (required)", None)
    method = config["method"]
    if method not in METHODS:
        raise _fail(source, "method", f"one of {list(METHODS)}", method)
    metric = config.get("metric")
    if method == "bayes" and metric is None:
        raise _fail(source, "metric", "a metric (bayes search needs one)", None)
    if metric is not None:
        if not isinstance(metric, Mapping) or "name" not in metric:
            raise _fail(source, "metric", "a mapping with name and goal", metric)
        if metric.get("goal", "minimize") not in GOALS:
            raise _fail(source, "metric.goal", f"one of {list(GOALS)}", metric.get("goal"))
        names = set(metric_names) if metric_names is not None else None
        if names is not None and metric["name"] not in names:
            raise _fail(source, "metric.name", f"a logged metric, one of {sorted(names)}", metric)
    parameters = config["parameters"]
    if not isinstance(parameters, Mapping) or not parameters:
        raise _fail(source, "parameters", "a non-empty mapping", parameters)
    for name, spec in parameters.items():
        _check_parameter(source, str(name), spec, method)
    command = config["command"]
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise _fail(source, "command", "a list of strings", command)
    if "${args}" not in command:
        raise _fail(source, "command", "a list holding ${args} (the swept values)", command)
    if "fit" not in command:
        raise _fail(source, "command", "an `mpcl fit` command", command)


def parameter_options(spec: Mapping[str, Any]) -> list[Any]:
    """Values that exercise a parameter: every listed value, or both ends of its range."""
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    distribution = spec.get("distribution")
    if distribution is None or distribution in BOUNDED:
        low, high = spec["min"], spec["max"]
        if distribution in ("log_uniform", "q_log_uniform", "inv_log_uniform"):
            return [math.exp(low), math.exp(high)]  # the bounds are exponents
        return [low, high]
    raise SweepConfigError(f"distribution {distribution!r}: no example values defined")


def example_assignments(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A few parameter assignments that together use every option of every parameter.

    Assignment ``i`` takes the ``i``-th option of each parameter (cycling shorter lists), so the
    count is the longest option list, not the size of the grid.
    """
    options = {name: parameter_options(spec) for name, spec in config["parameters"].items()}
    count = max(len(values) for values in options.values())
    cycles = {name: itertools.cycle(values) for name, values in options.items()}
    return [{name: next(cycle) for name, cycle in cycles.items()} for _ in range(count)]


def agent_command(config: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """The argument list a ``wandb agent`` runs for one assignment of the sweep's parameters.

    Mirrors the agent: each macro element is replaced by a list (``${args}`` by
    ``--key=value`` per parameter, in the assignment's order), every other element is kept.
    """
    macros: dict[str, list[str]] = {
        **AGENT_MACROS,
        "program": [str(config["program"])],
        "args": [f"--{key}={value}" for key, value in values.items()],
        "args_no_hyphens": [f"{key}={value}" for key, value in values.items()],
        "args_json": [json.dumps(dict(values))],
    }
    command: list[str] = []
    for item in config["command"]:
        if item.startswith("${") and item.endswith("}"):
            name = item[2:-1]
            if name not in macros:
                raise SweepConfigError(f"command: macro {item} is not one this helper expands")
            command += macros[name]
        else:
            command.append(item)
    return command


def mpcl_arguments(command: list[str]) -> list[str]:
    """The arguments after ``-m mpcl`` of an agent command (what ``mpcl.cli`` receives)."""
    for i in range(len(command) - 1):
        if command[i] == "-m" and command[i + 1] == "mpcl":
            return command[i + 2 :]
    raise SweepConfigError(f"command {command}: expected `-m mpcl` in it")
