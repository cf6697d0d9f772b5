"""The default seed is written once: every other default refers to DEFAULT_SEED."""

import ast
from pathlib import Path

from datamodules.protocols import DEFAULT_SEED

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mpcl", "datamodules", "benchmarks")


def _literal_seeds(path: Path) -> list[int]:
    """Line numbers of integer literals equal to the default seed (docstrings are strings)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value == DEFAULT_SEED
    ]


def test_the_default_seed_is_one_constant():
    found = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := _literal_seeds(path))
    }
    assert found == {"datamodules/protocols.py": [found["datamodules/protocols.py"][0]]}, found
