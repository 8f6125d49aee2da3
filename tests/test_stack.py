"""`aiida-perovskite setup` and the codes, computer and daemon it creates, on the selected stack."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import psutil
import pytest
import yaml
from aiida.orm import InstalledCode

from aiida_perovskite.stack import PROFILES_DIR, CodeSpec, SetupError, ensure_codes, find_executable
from tests.conftest import STACK, _postgres_database

VENV_BIN = pathlib.Path(sys.executable).parent


def test_codes_are_created_once_and_point_at_real_executables(aiida_localhost):
    specs = CodeSpec.from_yaml(PROFILES_DIR / "codes" / "localhost.yaml")
    assert [spec.label for spec in specs] == ["dp", "lmp", "cp2k", "teacher"]
    first = ensure_codes(aiida_localhost, specs, report=lambda _: None)
    again = ensure_codes(aiida_localhost, specs, report=lambda _: None)
    assert {label: code.pk for label, code in first.items()} == {label: code.pk for label, code in again.items()}
    for label, code in first.items():
        assert isinstance(code, InstalledCode)
        assert pathlib.Path(str(code.filepath_executable)).is_file(), label
    assert first["cp2k"].default_calc_job_plugin == "cp2k"
    assert first["teacher"].default_calc_job_plugin == "perovskite.teacher.label"


def test_code_of_a_deleted_clone_is_replaced(aiida_localhost, tmp_path):
    spec = CodeSpec(label="dp-moved", executable="dp", version_command=["--version"])
    old = InstalledCode(
        label="dp-moved", computer=aiida_localhost, filepath_executable=str(tmp_path / "gone/dp")
    ).store()
    new = ensure_codes(aiida_localhost, [spec], report=lambda _: None)["dp-moved"]
    assert new.pk != old.pk
    assert pathlib.Path(str(new.filepath_executable)) == find_executable(spec)
    assert old.is_hidden and old.label == f"dp-moved-stale-{old.pk}"


def test_missing_executable_says_how_to_install():
    spec = CodeSpec(label="vasp", executable="vasp_std_not_here", install_hint="install VASP and put it on PATH")
    with pytest.raises(SetupError, match="'vasp_std_not_here' for code 'vasp' not found: install VASP"):
        find_executable(spec)


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*args], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.daemon
def test_setup_command_from_scratch_is_idempotent(tmp_path):
    """The README's setup on an empty AIIDA_PATH: profile, computer, codes, daemon; a second run changes nothing."""
    env = {**os.environ, "AIIDA_PATH": str(tmp_path), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    config = PROFILES_DIR / "embedded.yaml"
    with _maybe_production_database() as database:
        if database is not None:
            spec = yaml.safe_load((PROFILES_DIR / "production.yaml").read_text())
            spec["storage"]["config"].update(database_name=database["database_name"])
            config = tmp_path / "production.yaml"
            config.write_text(yaml.safe_dump(spec))
        profile = yaml.safe_load(config.read_text())["profile"]
        try:
            first = run_cli(str(VENV_BIN / "aiida-perovskite"), "setup", "--config", str(config), env=env)
            assert first.returncode == 0, first.stdout + first.stderr
            assert f"created profile {profile!r}" in first.stdout
            assert "created code cp2k@localhost" in first.stdout
            assert "scheduler polled every 0.5 s" in first.stdout  # profiles/computers/localhost.yaml

            second = run_cli(str(VENV_BIN / "aiida-perovskite"), "setup", "--config", str(config), env=env)
            assert second.returncode == 0, second.stderr
            assert "created" not in second.stdout
            assert "daemon of" in second.stdout and "is running" in second.stdout

            status = run_cli(str(VENV_BIN / "verdi"), "status", env=env)
            assert status.returncode == 0, status.stdout + status.stderr
            assert "Daemon is running" in status.stdout
            codes = run_cli(str(VENV_BIN / "verdi"), "code", "list", env=env).stdout
            for label in ("dp@localhost", "lmp@localhost", "cp2k@localhost"):
                assert label in codes
            plugins = run_cli(str(VENV_BIN / "verdi"), "plugin", "list", "aiida.data", env=env).stdout
            assert "perovskite.potential" in plugins and "perovskite.training_set" in plugins
            timeout = run_cli(str(VENV_BIN / "verdi"), "-p", profile, "config", "get", "daemon.timeout", env=env)
            assert timeout.stdout.strip() == "20", timeout.stdout + timeout.stderr  # from the profile file

            # a machine stop: the daemon and its workers die, their PID file stays behind
            (pid_file,) = (tmp_path / ".aiida" / "daemon").rglob("*.pid")
            circus = psutil.Process(int(pid_file.read_text().split()[0]))
            for process in [*circus.children(recursive=True), circus]:
                process.kill()
            psutil.wait_procs([circus], timeout=30)
            assert pid_file.is_file()
            third = run_cli(str(VENV_BIN / "aiida-perovskite"), "setup", "--config", str(config), env=env)
            assert third.returncode == 0, third.stdout + third.stderr
            assert "does not answer" in third.stdout and "started the daemon" in third.stdout, third.stdout
            assert "Daemon is running" in run_cli(str(VENV_BIN / "verdi"), "status", env=env).stdout
        finally:
            run_cli(str(VENV_BIN / "verdi"), "-p", profile, "daemon", "stop", env=env)


class _maybe_production_database:
    """A scratch PostgreSQL database when the session runs on the production stack, else nothing."""

    def __enter__(self):
        self.database = _postgres_database() if STACK == "production" else None
        return self.database.__enter__() if self.database else None

    def __exit__(self, *exc_info):
        if self.database:
            self.database.__exit__(*exc_info)


def test_profile_files_parse():
    for name in ("embedded.yaml", "production.yaml"):
        spec = yaml.safe_load((PROFILES_DIR / name).read_text())
        assert {"profile", "storage", "broker"} <= set(spec), name
    assert json.dumps(yaml.safe_load((PROFILES_DIR / "computers" / "slurm-example.yaml").read_text()))


def test_a_finished_calcfunction_is_taken_from_the_cache_not_run_again(aiida_profile):
    """The profiles cache every calcfunction of the project (a step replayed after a daemon crash takes the
    finished result) and `dp test` jobs; the test profile has the options `setup` writes."""
    import inspect

    from aiida import orm
    from aiida.manage.caching import get_use_cache

    import aiida_perovskite.calcfunctions.seeds as seeds
    from aiida_perovskite.stack import cached_processes

    cached = cached_processes()
    assert "aiida.calculations:perovskite.deepmd.test" in cached
    assert f"{seeds.__name__}.derive_seeds" in cached and all(get_use_cache(identifier=name) for name in cached)
    assert not get_use_cache(identifier="aiida.calculations:perovskite.teacher.label")  # labels are not reused
    for name in cached[:-1]:  # each names a calcfunction of the package
        module, function = name.rsplit(".", 1)
        assert inspect.isfunction(getattr(__import__(module, fromlist=[function]), function))
    _, first = seeds.derive_seeds.run_get_node(orm.Int(11), orm.Int(3))
    _, again = seeds.derive_seeds.run_get_node(orm.Int(11), orm.Int(3))
    assert not first.base.caching.is_created_from_cache
    assert again.base.caching.get_cache_source() == first.uuid
