"""docs/model.md stays true to the code: arguments, defaults, choices, overlays, sizes, citations.

The document is the project's specification of MPCL; these tests fail as soon as a constructor
argument, a default, an ablation overlay or a parameter count changes without it.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamodules.dmer import dmer_metadata
from mpcl.models import MPCLModule
from mpcl.nn import MPCLNet

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "model.md"
ABLATIONS = ROOT / "experiments" / "ablations"
CITING_MODULES = [*sorted((ROOT / "mpcl" / "nn").glob("*.py")), ROOT / "mpcl/models/mpcl.py"]
CITATION = re.compile(r"docs/model\.md, sections? ((?:'[^']+'(?:,| and| or)? ?)+)")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(heading: str) -> list[str]:
    """The lines under ``heading`` (a full Markdown heading line) up to the next heading."""
    lines = doc_text().splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def table_rows(heading: str) -> dict[str, list[str]]:
    """The body rows of the table under ``heading``, keyed by their first cell (header skipped)."""
    lines = [line for line in section(heading) if line.startswith("|")]
    assert lines, f"docs/model.md: no table under {heading!r}"
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def render(default: Any) -> str:
    """A default value as the document writes it (strings quoted, callables by name)."""
    if default is inspect.Parameter.empty:
        return "required"
    if isinstance(default, str):
        return f'`"{default}"`'
    if callable(default):
        return f"`{default.__name__}`"
    return f"`{default!r}`"


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self")
    return params


@pytest.mark.parametrize("cls", [MPCLModule, MPCLNet])
def test_every_constructor_argument_is_documented_with_its_default(cls):
    rows = table_rows("## Constructor arguments")
    for name, param in init_parameters(cls).items():
        assert name in rows, f"docs/model.md: argument {name!r} of {cls.__name__} is missing"
        default_cell = rows[name][0]
        assert render(param.default) in default_cell, (
            f"docs/model.md: the default of {cls.__name__}.{name} is {render(param.default)}, "
            f"the document says {default_cell!r}"
        )


def test_documented_arguments_exist():
    documented = set(table_rows("## Constructor arguments"))
    assert documented == set(init_parameters(MPCLModule))


@pytest.mark.parametrize("cls", [MPCLModule, MPCLNet])
def test_every_choice_of_a_literal_argument_is_documented(cls):
    rows = table_rows("## Constructor arguments")
    hints = typing.get_type_hints(cls.__init__)
    literals = {
        n: typing.get_args(h) for n, h in hints.items() if typing.get_origin(h) is typing.Literal
    }
    assert literals, "the check is not vacuous"
    for name, choices in literals.items():
        row = " | ".join(rows[name])
        for choice in choices:
            assert f'"{choice}"' in row or f"`{choice}`" in row, (
                f"docs/model.md: choice {choice!r} of {cls.__name__}.{name} is not named"
            )


def overlay_setting(path: Path) -> str:
    """The one ``key: value`` an overlay sets, in YAML flow style (``scales: [1]``)."""
    init_args = yaml.safe_load(path.read_text())["model"]["init_args"]
    assert len(init_args) == 1, f"{path}: an ablation overlay sets one argument"
    return yaml.safe_dump(init_args, default_flow_style=True).strip().strip("{}")


def test_every_ablation_overlay_is_documented_with_its_setting():
    rows = table_rows("## Ablation overlays")
    overlays = {p.stem: overlay_setting(p) for p in sorted(ABLATIONS.glob("*.yaml"))}
    assert len(overlays) >= 9
    assert set(rows) == set(overlays), "docs/model.md: the overlay table and experiments/ablations/"
    arguments = set(init_parameters(MPCLModule))
    for name, setting in overlays.items():
        assert rows[name][0] == f"`{setting}`", f"docs/model.md: overlay {name} sets {setting}"
        assert setting.split(":")[0] in arguments
        # The argument's own row names the overlay too.
        assert f"`{name}`" in " | ".join(
            table_rows("## Constructor arguments")[setting.split(":")[0]]
        )


def test_parameter_counts_on_dmer():
    rows = table_rows("### Parameters on DMER")
    config = yaml.safe_load((ROOT / "experiments/dmer/mpcl.yaml").read_text())
    init_args = {
        k: v for k, v in config["model"]["init_args"].items() if k in init_parameters(MPCLNet)
    }
    net = MPCLNet(dmer_metadata(), **init_args)
    counts = {
        name: sum(p.numel() for p in child.parameters()) for name, child in net.named_children()
    }
    counts["total"] = sum(p.numel() for p in net.parameters())
    documented = {name: int(cells[0].replace(",", "")) for name, cells in rows.items()}
    assert documented == counts


def test_dmer_token_counts():
    config = yaml.safe_load((ROOT / "experiments/dmer/mpcl.yaml").read_text())
    groups = config["model"]["init_args"]["token_groups"]
    net = MPCLNet(dmer_metadata(), token_groups=groups)
    counts = {m: net.tokenizers.num_tokens(m) for m in ("eeg", "gsr", "ppg", "face")}
    stated = "DMER: EEG {eeg}, GSR {gsr}, PPG {ppg}, face {face} (run configs)".format(**counts)
    assert stated in doc_text()
    default_face = MPCLNet(dmer_metadata()).tokenizers.num_tokens("face")
    assert f"the face becomes {default_face} flat tokens" in doc_text()


@pytest.mark.parametrize("path", CITING_MODULES, ids=lambda p: p.name)
def test_modules_cite_existing_sections(path):
    docstring = inspect.cleandoc(path.read_text().split('"""')[1])
    cited = CITATION.findall(" ".join(docstring.split()))
    assert cited, f"{path.relative_to(ROOT)}: the module docstring does not cite docs/model.md"
    headings = {
        line.lstrip("#").strip() for line in doc_text().splitlines() if line.startswith("#")
    }
    for group in cited:
        for title in re.findall(r"'([^']+)'", group):
            assert title in headings, f"{path.relative_to(ROOT)} cites a missing section {title!r}"


def test_no_reference_to_a_specification_outside_the_repository():
    outside = ("mpcl-model" + ".md", "shared/" + "docs")
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for folder in ("mpcl", "datamodules", "tests", "benchmarks", "experiments"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml"}]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for needle in outside:
            assert needle not in text, f"{path.relative_to(ROOT)} points outside the repository"
