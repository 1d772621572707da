"""Packaging: the shipped defaults, ``init_config_dir`` and the built wheel on its own.

The slow test builds the wheel, installs it into a fresh virtual environment (dependency
versions pinned by uv.lock) and runs ``mdm demo`` from an empty folder: the configuration must
come from the package, not from a checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mdm_orchestration.config import (
    CONFIG_FILES,
    DEFAULT_CONFIG_DIR,
    ConfigError,
    init_config_dir,
    load_hub_config,
)
from tests.conftest import REPO


def test_defaults_ship_inside_the_package() -> None:
    assert DEFAULT_CONFIG_DIR.is_relative_to(REPO / "mdm_orchestration")
    assert sorted(p.name for p in DEFAULT_CONFIG_DIR.glob("*.yaml")) == sorted(CONFIG_FILES)
    assert load_hub_config().sources == load_hub_config(DEFAULT_CONFIG_DIR).sources


def test_init_config_dir_writes_an_editable_copy(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "config"
    written = init_config_dir(dest)
    assert sorted(p.name for p in written) == sorted(CONFIG_FILES)
    for path in written:
        assert path.read_bytes() == (DEFAULT_CONFIG_DIR / path.name).read_bytes()
    assert load_hub_config(dest).sources == load_hub_config(DEFAULT_CONFIG_DIR).sources


def test_init_config_dir_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "matching.yaml").write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="refusing to overwrite.*matching.yaml"):
        init_config_dir(tmp_path)
    assert (tmp_path / "matching.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matching.yaml"]


def _uv() -> str:
    uv = pytest.importorskip("uv", reason="uv is in the dev dependency group (scripts/setup.sh)")
    return uv.find_uv_bin()


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:3]}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_the_wheel_runs_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDM_", "DAGSTER_", "VIRTUAL"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    dist, venv, empty = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    _run([uv, "build", "--wheel", "--out-dir", str(dist), str(REPO)], REPO, env, 300)
    (wheel,) = dist.glob("mdm_orchestration-*.whl")
    constraints = tmp_path / "constraints.txt"
    lock = ["--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    _run(
        [uv, "export", *lock, "--format", "requirements-txt", "-o", str(constraints), "-q"],
        REPO,
        env,
        120,
    )
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], empty, env, 120)
    python = venv / "bin" / "python"
    _run(
        [uv, "pip", "install", "-q", "--python", str(python), "-c", str(constraints), str(wheel)],
        empty,
        env,
        600,
    )
    out = _run(
        [str(venv / "bin" / "mdm"), "demo", "--people", "60", "--home", str(tmp_path / "home")],
        empty,
        env,
        600,
    )
    golden = re.search(r"golden records (\d+)", out)
    assert golden and int(golden.group(1)) > 0, out[-3000:]
    assert list(empty.iterdir()) == [], "the demo wrote into the working folder"
