"""A non-editable install carries every package: the tests import the checkout, so
they cannot notice a package missing from the wheel (.ci/systemd-check did)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def test_every_package_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {".".join(init.parent.relative_to(REPO).parts)
               for top in ("edge", "convert") for init in (REPO / top).rglob("__init__.py")}
    assert on_disk - listed == set(), "add them to [tool.setuptools] packages in pyproject.toml"
