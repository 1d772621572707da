"""Small helpers shared by tests."""

from __future__ import annotations

import shutil
from pathlib import Path


def write_file(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def copy_landing(sample_silos: Path, dest: Path) -> Path:
    shutil.copytree(sample_silos / "landing", dest, dirs_exist_ok=True)
    return dest
