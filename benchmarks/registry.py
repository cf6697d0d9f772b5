"""Which models the benchmark measures, and how each is built.

The registry (``benchmarks/models.yaml``) maps a display name to a run config; the model is built
from that config's ``model:`` section with the same parser LightningCLI uses (optimizer and
scheduler callables included), on the metadata of the benchmark's data set.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from datamodules.metadata import DatasetMetadata

#: The repository root: registry paths are relative to it.
REPO = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = REPO / "benchmarks" / "models.yaml"


@dataclass(frozen=True)
class ModelEntry:
    """One model to benchmark.

    Attributes:
        name: Row label of the results table.
        config: Run config (YAML) whose ``model:`` section builds the model.
    """

    name: str
    config: str


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> list[ModelEntry]:
    """The listed models in order, then every run config matched by ``discover`` not listed yet.

    Raises:
        ValueError: When the file lacks a ``models`` mapping of name -> config path.
    """
    path = Path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    models = spec.get("models")
    if not isinstance(models, dict) or not all(isinstance(v, str) for v in models.values()):
        raise ValueError(f"{path}: 'models' must map a model name to a run-config path")
    entries = [ModelEntry(str(name), config) for name, config in models.items()]
    listed = {(REPO / e.config).resolve() for e in entries}
    for pattern in spec.get("discover") or []:
        for found in sorted(glob.glob(str(REPO / pattern))):
            if Path(found).resolve() in listed:
                continue
            listed.add(Path(found).resolve())
            entries.append(ModelEntry(Path(found).stem, str(Path(found).relative_to(REPO))))
    return entries


def select(entries: list[ModelEntry], names: list[str] | None) -> list[ModelEntry]:
    """The entries named in ``names`` (case-insensitive), in registry order; all for ``None``.

    Raises:
        ValueError: For a name the registry does not have.
    """
    if not names:
        return entries
    wanted = {n.lower() for n in names}
    unknown = wanted - {e.name.lower() for e in entries}
    if unknown:
        raise ValueError(
            f"--models: {sorted(unknown)} not in the registry (known: {[e.name for e in entries]})"
        )
    return [e for e in entries if e.name.lower() in wanted]


def model_section(entry: ModelEntry) -> dict[str, Any]:
    """The ``model:`` section of the entry's run config.

    Raises:
        FileNotFoundError: When the config does not exist.
        ValueError: When it has no ``model.class_path``.
    """
    path = REPO / entry.config
    if not path.is_file():
        raise FileNotFoundError(f"{entry.config}: run config of model {entry.name!r} not found")
    section = (yaml.safe_load(path.read_text()) or {}).get("model")
    if not isinstance(section, dict) or "class_path" not in section:
        raise ValueError(f"{entry.config}: expected a 'model:' section with a class_path")
    return section


def build_model(entry: ModelEntry, metadata: DatasetMetadata) -> Any:
    """Instantiate the entry's model on ``metadata`` as LightningCLI would.

    Imports fail here (not at registry load) so that one missing model skips one row only.
    """
    from lightning.pytorch.cli import LightningArgumentParser

    from mpcl.models.base import EmotionDistributionModule

    section = model_section(entry)
    section = {**section, "init_args": {**(section.get("init_args") or {})}}
    section["init_args"]["metadata"] = metadata.to_dict()
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(EmotionDistributionModule, "model", subclass_mode=True)
    config = parser.parse_object({"model": section})
    return parser.instantiate(config).model
