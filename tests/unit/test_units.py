"""The systemd units: rendering, systemd-analyze verify/security, install and uninstall."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.commands import units
from edge.commands.units import UnitOptions, render_unit, service_config
from edge.config import load
from edge.errors import CliError

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO_ROOT / "systemd"
MAX_EXPOSURE = 2.0
DEFAULT_EXEC = units.DEFAULT_EXEC


@pytest.mark.parametrize("name", sorted(units.repository_files()))
def test_repository_files_are_what_service_py_renders(name: str) -> None:
    # edge/commands/units.py is the single source of truth; regenerate systemd/ with:
    # python -c "from edge.commands.units import repository_files as r; [open('systemd/'+n,'w')
    #            .write(t) for n, t in r().items()]"
    assert (SYSTEMD_DIR / name).read_text() == units.repository_files()[name]


def test_example_config_parses_and_matches_service_config() -> None:
    config = load(SYSTEMD_DIR / "config.toml")
    assert config == service_config()
    assert config.source.input == "0"
    assert config.log.path == "/var/log/edge-emotion/events.jsonl"
    assert config.display.mode == "none"


def test_units_use_absolute_exec_and_the_notify_protocol() -> None:
    for name in (units.HEADLESS_UNIT, units.KIOSK_UNIT):
        text = (SYSTEMD_DIR / name).read_text()
        assert "\nExecStart=/usr/local/bin/edge-run run --config /etc/edge-emotion/config.toml" \
            in text
        for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure",
                     "DynamicUser=yes", "SupplementaryGroups=video", "PrivateNetwork=yes",
                     "RestrictAddressFamilies=AF_UNIX", "DevicePolicy=closed"):
            assert f"\n{line}\n" in text, line
    kiosk = (SYSTEMD_DIR / units.KIOSK_UNIT).read_text()
    assert "--display framebuffer\n" in kiosk
    assert "\nDeviceAllow=char-fb rw\n" in kiosk
    assert "char-fb" not in (SYSTEMD_DIR / units.HEADLESS_UNIT).read_text()


def test_user_option_replaces_dynamic_user() -> None:
    text = render_unit(UnitOptions(user="edge"))
    assert "\nUser=edge\n" in text
    assert "DynamicUser" not in text




def test_unsafe_paths_are_refused() -> None:
    with pytest.raises(CliError, match="absolute path"):
        render_unit(UnitOptions(exec_path="/opt/my venv/bin/edge-run"))
    with pytest.raises(CliError):
        render_unit(UnitOptions(config_path="/etc/%n/config.toml"))
