"""The systemd units: rendering, systemd-analyze verify/security, install and uninstall."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.commands import service as svc
from edge.commands import units
from edge.commands.service import service
from edge.commands.units import UnitOptions, render_config, render_unit

real_framebuffer_problem = svc.framebuffer_problem  # the Host fixture stands one in

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO_ROOT / "systemd"
MAX_EXPOSURE = 2.0
DEFAULT_EXEC = units.DEFAULT_EXEC


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd); CI installs it")
    return found


def make_executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_units(directory: Path, exec_path: str, **options: object) -> dict[str, Path]:
    """Both units rendered with `exec_path`, written into `directory`."""
    units = {}
    for kiosk in (False, True):
        opts = UnitOptions(kiosk=kiosk, exec_path=exec_path, **options)  # type: ignore[arg-type]
        units[opts.unit_name] = directory / opts.unit_name
        units[opts.unit_name].write_text(render_unit(opts))
    return units


def exposure(unit: Path) -> float:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent, capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure score in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


# ---------------------------------------------------------------------------- repository files














# ---------------------------------------------------------------------------- systemd-analyze


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists and is executable: point it at a stand-in.
    analyze = systemd_analyze()
    exe = make_executable(tmp_path / "bin" / "edge-run")
    for unit in write_units(tmp_path, str(exe)).values():
        result = subprocess.run([analyze, "verify", "--man=no", str(unit)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings


def test_security_exposure(tmp_path: Path) -> None:
    scores = {name: exposure(path) for name, path in write_units(tmp_path, DEFAULT_EXEC).items()}
    assert scores[units.HEADLESS_UNIT] <= MAX_EXPOSURE
    # The kiosk unit's comment says it rates the same as the headless one.
    assert scores[units.KIOSK_UNIT] == scores[units.HEADLESS_UNIT]


def test_security_exposure_of_user_and_home_variants(tmp_path: Path) -> None:
    units = write_units(tmp_path, DEFAULT_EXEC, user="edge", code_paths=("/home/pi/venv",))
    for path in units.values():
        assert exposure(path) <= MAX_EXPOSURE


# ---------------------------------------------------------------------------- install / uninstall


class Host:
    """Temporary unit/config dirs, a fake systemctl that records its arguments."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.unit_dir = tmp_path / "systemd-system"
        self.unit_dir.mkdir()
        self.config_dir = tmp_path / "etc-edge-emotion"
        self.exe = make_executable(tmp_path / "opt" / "bin" / "edge-run")
        self.calls = tmp_path / "systemctl-calls"
        bin_dir = tmp_path / "fakebin"
        make_executable(bin_dir / "systemctl",
                        f'#!/bin/sh\necho "$*" >> "{self.calls}"\nexit "${{FAKE_RC:-0}}"\n')
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setattr(svc, "is_root", lambda: True)
        # Where this interpreter lives (e.g. pyenv under /root) must not leak into the units.
        monkeypatch.setattr(svc, "code_paths", lambda exec_path: ())
        # pytest's tmp_path lies under /tmp, which a real install refuses (PrivateTmp=yes).
        monkeypatch.setattr(svc, "PRIVATE_TMP_DIRS", ())
        # A framebuffer, as on a Pi that boots to a console (this machine may have none).
        monkeypatch.setattr(svc, "framebuffer_problem", lambda settings: None)

    def run(self, *args: str) -> tuple[int, str]:
        dirs = ["--unit-dir", str(self.unit_dir), "--config-dir", str(self.config_dir)]
        if args[0] == "install":
            dirs += ["--exec-path", str(self.exe)]
        result = CliRunner().invoke(service, [*args, *dirs], catch_exceptions=False)
        return result.exit_code, result.output

    def systemctl_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def options(self, kiosk: bool = False) -> UnitOptions:
        return UnitOptions(kiosk=kiosk, exec_path=str(self.exe),
                           config_path=str(self.config_dir / "config.toml"))


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return Host(tmp_path, monkeypatch)


def test_dry_run_prints_everything_and_touches_nothing(host: Host) -> None:
    code, out = host.run("install", "--dry-run")
    assert code == 0, out
    unit = host.unit_dir / units.HEADLESS_UNIT
    config = host.config_dir / "config.toml"
    assert f"# would write {unit}\n" in out
    assert render_unit(host.options()) in out
    assert f"# would write {config}\n" in out
    assert render_config() in out
    assert out.index("daemon-reload") < out.index(f"enable --now {units.HEADLESS_UNIT}")
    assert "# would run: " in out
    assert list(host.unit_dir.iterdir()) == []
    assert not host.config_dir.exists()
    assert host.systemctl_calls() == []


def test_dry_run_needs_neither_root_nor_systemctl(host: Host,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "is_root", lambda: False)
    monkeypatch.setenv("PATH", "")
    code, out = host.run("install", "--kiosk", "--dry-run")
    assert code == 0, out
    assert "# would run: systemctl enable --now edge-emotion-kiosk.service" in out


def test_install_writes_unit_and_config_then_enables(host: Host) -> None:
    code, out = host.run("install")
    assert code == 0, out
    unit = host.unit_dir / units.HEADLESS_UNIT
    config = host.config_dir / "config.toml"
    assert unit.read_text() == render_unit(host.options())
    # What install writes is exactly the example in the repository.
    assert config.read_text() == (SYSTEMD_DIR / "config.toml").read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert host.systemctl_calls() == ["daemon-reload", f"enable --now {units.HEADLESS_UNIT}"]


def test_install_never_overwrites_the_config(host: Host) -> None:
    host.config_dir.mkdir()
    config = host.config_dir / "config.toml"
    config.write_text('[source]\ninput = "picamera"\n')
    code, out = host.run("install")
    assert code == 0, out
    assert config.read_text() == '[source]\ninput = "picamera"\n'
    assert f"kept the existing {config}" in out


def test_reinstall_restarts_a_running_service(host: Host) -> None:
    assert host.run("install")[0] == 0
    host.calls.unlink()
    assert host.run("install")[0] == 0
    assert host.systemctl_calls() == [
        "daemon-reload", f"try-restart {units.HEADLESS_UNIT}",
        f"enable --now {units.HEADLESS_UNIT}"]


def test_kiosk_install_disables_the_headless_unit_first(host: Host) -> None:
    assert host.run("install")[0] == 0
    host.calls.unlink()
    code, out = host.run("install", "--kiosk")
    assert code == 0, out
    assert (host.unit_dir / units.KIOSK_UNIT).read_text() == render_unit(host.options(kiosk=True))
    assert host.systemctl_calls() == [
        f"disable --now {units.HEADLESS_UNIT}", "daemon-reload", f"enable --now {units.KIOSK_UNIT}"]


def test_kiosk_install_refuses_without_a_framebuffer(host: Host,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No framebuffer where the config says: nothing is written, disabled or enabled."""
    monkeypatch.setattr(svc, "framebuffer_problem", real_framebuffer_problem)
    assert host.run("install")[0] == 0  # the headless unit, running
    host.calls.unlink()
    host.config_dir.joinpath("config.toml").write_text(
        '[display]\nframebuffer = "/dev/fb-that-is-not-there"\n')
    result = CliRunner().invoke(service, ["install", "--kiosk", "--unit-dir",
                                          str(host.unit_dir), "--config-dir",
                                          str(host.config_dir), "--exec-path", str(host.exe)])
    assert result.exit_code != 0
    assert "no framebuffer at /dev/fb-that-is-not-there" in result.output
    assert "Traceback" not in result.output
    assert not (host.unit_dir / units.KIOSK_UNIT).exists()
    assert host.systemctl_calls() == []  # the headless unit stays enabled and running
    code, out = host.run("install", "--kiosk", "--dry-run")  # says so, changes nothing
    assert code == 0 and "install would refuse" in out
    assert host.systemctl_calls() == []
    code, out = host.run("install", "--kiosk", "--force")  # a screen attached later
    assert code == 0, out
    assert host.systemctl_calls()[-1] == f"enable --now {units.KIOSK_UNIT}"


def test_install_as_user(host: Host) -> None:
    code, out = host.run("install", "--user", "root")
    assert code == 0, out
    text = (host.unit_dir / units.HEADLESS_UNIT).read_text()
    assert "\nUser=root\n" in text
    assert "DynamicUser" not in text


def test_mqtt_gets_network_through_a_dropin_only_while_enabled(host: Host) -> None:
    host.config_dir.mkdir()
    config = host.config_dir / "config.toml"
    config.write_text('[mqtt]\nenabled = true\nhost = "192.0.2.7"\n'
                      'username = "edge"\npassword_file = "mqtt-password"\n')
    dropin = host.unit_dir / f"{units.HEADLESS_UNIT}.d" / units.MQTT_DROPIN
    assert host.run("install")[0] == 0
    text = dropin.read_text()
    assert "PrivateNetwork=no" in text and "IPAddressAllow=192.0.2.7" in text
    assert f"LoadCredential=mqtt-password:{host.config_dir}/mqtt-password" in text
    assert "PrivateNetwork=yes" in (host.unit_dir / units.HEADLESS_UNIT).read_text()
    config.write_text("[mqtt]\nenabled = false\n")
    assert host.run("install")[0] == 0
    assert not dropin.exists()
    config.write_text('[mqtt]\nenabled = true\nhost = "broker.lan"\n')
    assert host.run("install")[0] == 0 and dropin.exists()
    assert host.run("uninstall")[0] == 0 and not dropin.exists()


def test_uninstall_keeps_config_and_logs(host: Host) -> None:
    assert host.run("install")[0] == 0
    host.calls.unlink()
    code, out = host.run("uninstall")
    assert code == 0, out
    assert not (host.unit_dir / units.HEADLESS_UNIT).exists()
    assert (host.config_dir / "config.toml").exists()
    assert "kept" in out and "/var/log/edge-emotion" in out
    assert host.systemctl_calls() == [f"disable --now {units.HEADLESS_UNIT}", "daemon-reload"]


def test_uninstall_dry_run_and_not_installed(host: Host) -> None:
    assert host.run("install")[0] == 0
    host.calls.unlink()
    code, out = host.run("uninstall", "--dry-run")
    assert code == 0, out
    assert f"# would remove {host.unit_dir / units.HEADLESS_UNIT}" in out
    assert (host.unit_dir / units.HEADLESS_UNIT).exists()
    code, out = host.run("uninstall", "--kiosk")
    assert code == 0, out
    assert "not installed" in out
    assert host.systemctl_calls() == []


def assert_one_line_error(code: int, out: str, fragment: str) -> None:
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-run: error: "), out
    assert fragment in lines[0]
    assert "Traceback" not in out


def test_error_not_root(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "is_root", lambda: False)
    assert_one_line_error(*host.run("install"), "root")
    assert_one_line_error(*host.run("uninstall"), "root")


def test_error_systemctl_missing(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert_one_line_error(*host.run("install"), "systemctl not found")


def test_error_unit_dir_not_writable(host: Host) -> None:
    host.unit_dir.rmdir()
    assert_one_line_error(*host.run("install"), "not writable")


def test_error_unknown_user(host: Host) -> None:
    assert_one_line_error(*host.run("install", "--user", "no-such-user-xyz"), "no such account")


def test_error_invalid_existing_config(host: Host) -> None:
    host.config_dir.mkdir()
    (host.config_dir / "config.toml").write_text("[detect]\nwidth = 1\n")
    assert_one_line_error(*host.run("install"), "detect.width")
    assert list(host.unit_dir.iterdir()) == []


def test_error_systemctl_fails(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RC", "1")
    code, out = host.run("install")
    assert code == 2
    assert out.strip().splitlines()[-1].startswith("edge-run: error: `")
    assert "daemon-reload" in out.strip().splitlines()[-1]


def test_find_edge_run_prefers_argv0(tmp_path: Path) -> None:
    exe = make_executable(tmp_path / "venv" / "bin" / "edge-run")
    assert svc.find_edge_run(str(exe)) == str(exe)


def test_code_under_home_is_bound_read_only(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(svc, "HOME_ROOTS", (tmp_path,))
    exe = make_executable(tmp_path / "pi" / "venv" / "bin" / "edge-run")
    paths = svc.code_paths(str(exe))
    assert paths == (str((tmp_path / "pi" / "venv").resolve()),)
    text = render_unit(UnitOptions(exec_path=str(exe), code_paths=paths))
    assert "\nProtectHome=tmpfs\n" in text
    assert f"\nBindReadOnlyPaths={paths[0]}\n" in text
