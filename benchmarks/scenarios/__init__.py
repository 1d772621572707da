"""Generalisation scenarios: silos the hub has never seen, each onboarded by its own
``sources.yaml`` alone (see benchmarks/README.md, "Generalisation scenarios").

Each scenario folder holds ``generator.py`` (a small seeded generator with its own ground truth,
independent of mdm_orchestration/sample_data) and ``sources.yaml`` (the onboarding). The other
configuration files are the hub's shipped ones (``mdm_orchestration/defaults``).

    from benchmarks.scenarios import build
    landing, truth, config_dir = build("b2b", Path("/tmp/b2b"), records=2000)
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SCENARIOS = ("consumer", "b2b", "international")
DEFAULT_RECORDS = {"consumer": 10000, "b2b": 8000, "international": 10000}


def generator(name: str):  # noqa: ANN201
    return importlib.import_module(f"benchmarks.scenarios.{name}.generator")


def config_dir(name: str, dest: Path) -> Path:
    """A configuration folder for the scenario: its own ``sources.yaml`` and the shipped rest.

    The shipped ``quality.yaml`` is used without its per-source section (it names the sample
    silos, which the scenario does not have; the loader would refuse them). While the hub has
    no ``website`` canonical field yet, a scenario's website columns are listed as ignored.
    """
    from mdm_orchestration.config import DEFAULT_CONFIG_DIR
    from mdm_orchestration.config.base import CANONICAL_FIELDS

    dest.mkdir(parents=True, exist_ok=True)
    sources = yaml.safe_load((HERE / name / "sources.yaml").read_text(encoding="utf-8"))
    for body in sources["sources"].values():
        mapping = body.get("mapping", {})
        for canonical in [c for c in mapping if c not in CANONICAL_FIELDS]:
            column = mapping.pop(canonical)
            body.setdefault("ignored_columns", []).append(
                column if isinstance(column, str) else column["column"]
            )
    (dest / "sources.yaml").write_text(
        yaml.safe_dump(sources, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    for file in ("matching.yaml", "survivorship.yaml", "subscriptions.yaml"):
        if (DEFAULT_CONFIG_DIR / file).is_file():
            shutil.copyfile(DEFAULT_CONFIG_DIR / file, dest / file)
    quality = yaml.safe_load((DEFAULT_CONFIG_DIR / "quality.yaml").read_text(encoding="utf-8"))
    quality.pop("sources", None)
    (dest / "quality.yaml").write_text(yaml.safe_dump(quality, sort_keys=False), encoding="utf-8")
    return dest


def skipped_fields(name: str) -> list[str]:
    """Canonical fields the scenario maps that this hub does not know (yet)."""
    from mdm_orchestration.config.base import CANONICAL_FIELDS

    sources = yaml.safe_load((HERE / name / "sources.yaml").read_text(encoding="utf-8"))
    return sorted(
        {
            c
            for body in sources["sources"].values()
            for c in body.get("mapping", {})
            if c not in CANONICAL_FIELDS
        }
    )


def build(name: str, out: Path, records: int | None = None, seed: int = 2718) -> tuple:
    """Generate the scenario under ``out``: ``(landing, truth.csv, config folder)``."""
    out.mkdir(parents=True, exist_ok=True)
    generator(name).generate(out, records or DEFAULT_RECORDS[name], seed)
    return out / "landing", out / "truth.csv", config_dir(name, out / "config")
