"""What `pip install .` ships: every package of the source tree the tests import, so nothing
works only by accident of the working directory."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
#: Run from a checkout only (`python -m bench`), never from an installed copy: its tests
#: check the benchmark's own bookkeeping, and a top-level `bench` in site-packages would
#: squat a generic name.
CHECKOUT_ONLY = {"bench"}


def test_every_package_the_tests_import_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = set(
        find_packages(ROOT, include=config["tool"]["setuptools"]["packages"]["find"]["include"])
    )
    imported: set[str] = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    ours = {name for name in imported if (ROOT / name / "__init__.py").is_file()}
    ours -= {"tests", *CHECKOUT_ONLY}
    assert "reliability" in ours and "bot" in ours
    assert ours - shipped == set()
    assert {"bot.store", "consoles", "reliability"} <= shipped
