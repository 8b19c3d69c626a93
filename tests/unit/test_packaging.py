"""pyproject.toml installs every package of the source tree (a non-editable install is
what a device gets; tests run from the checkout and would not notice a missing one)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for top in ("edge", "convert") for init in (REPO / top).rglob("__init__.py")}
    assert found - listed == set(), "add them to [tool.setuptools] packages"
    for package, folder in setuptools.get("package-dir", {}).items():
        assert (REPO / folder).is_dir() and package in listed
