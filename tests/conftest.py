"""Test configuration: the storage stack, shared data and real executables.

``PEROVSKITE_TEST_STACK`` selects the stack of the session profile: ``embedded`` (SQLite + ZeroMQ, the
default) or ``production`` (PostgreSQL + RabbitMQ; ``scripts/services.sh`` starts them).
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import sys

import pytest

from aiida_perovskite.stack import put_venv_on_path

put_venv_on_path()  # before aiida-core looks up `verdi` for the daemon
pytest_plugins = ["aiida.tools.pytest_fixtures", "tests.campaign_fixtures"]

STACK = os.environ.get("PEROVSKITE_TEST_STACK", "embedded")
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
UNIPERO = SHARED_DATA / "unipero-task1"
VENV_BIN = pathlib.Path(sys.executable).parent


def pytest_report_header(config):
    return f"aiida-perovskite test stack: {STACK}; shared data: {SHARED_DATA if SHARED_DATA.is_dir() else 'absent'}"


@pytest.fixture(scope="session")
def aiida_profile(aiida_config, aiida_profile_factory):
    """The session profile on the selected stack, with a broker so that tests can use a live daemon."""
    if STACK == "embedded":
        with aiida_profile_factory(aiida_config, storage_backend="core.sqlite_dos", broker_backend="core.zeromq") as p:
            _set_profile_options(aiida_config, p, "embedded")
            yield p
    elif STACK == "production":
        with _postgres_database() as storage_config:
            storage_config["repository_uri"] = (pathlib.Path(aiida_config.dirpath) / "repository").as_uri()
            with aiida_profile_factory(
                aiida_config,
                storage_backend="core.psql_dos",
                storage_config=storage_config,
                broker_backend="core.rabbitmq",
            ) as profile:
                _set_profile_options(aiida_config, profile, "production")
                yield profile
    else:
        raise pytest.UsageError(f"PEROVSKITE_TEST_STACK={STACK!r}: use 'embedded' or 'production'")


def _set_profile_options(config, profile, stack: str) -> None:
    """The AiiDA options `aiida-perovskite setup` gives a profile of this stack (profiles/<stack>.yaml), written
    to the test configuration (before, they were set in this process only, so the daemon ran without them)."""
    from aiida_perovskite.stack import PROFILES_DIR, load_yaml, profile_options

    for option, value in profile_options(load_yaml(PROFILES_DIR / f"{stack}.yaml")).items():
        config.set_option(option, value, scope=profile.name)
    config.store()  # the daemon's workers read the options from the file


class _postgres_database:
    """A throw-away PostgreSQL database owned by the test role; dropped afterwards."""

    def __enter__(self) -> dict:
        import psycopg

        self.params = {
            "host": os.environ.get("PEROVSKITE_PG_HOST", "localhost"),
            "port": int(os.environ.get("PEROVSKITE_PG_PORT", "5432")),
            "user": os.environ.get("PEROVSKITE_PG_USER", "aiida"),
            "password": os.environ.get("PEROVSKITE_PG_PASSWORD", "aiida"),
        }
        self.name = f"perovskite_test_{secrets.token_hex(6)}"
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **self.params) as connection:
                connection.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.OperationalError as exc:
            pytest.exit(f"PostgreSQL is not reachable ({exc}); run scripts/services.sh first", returncode=3)
        return {
            "database_engine": "postgresql_psycopg",
            "database_hostname": self.params["host"],
            "database_port": self.params["port"],
            "database_name": self.name,
            "database_username": self.params["user"],
            "database_password": self.params["password"],
        }

    def __exit__(self, *exc_info) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **self.params) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def unipero_dir() -> pathlib.Path:
    """The real BaTiO3 DFT frames of ../shared/data; tests using them skip where the folder is absent."""
    if not UNIPERO.is_dir():
        pytest.skip(f"reference data {UNIPERO} is absent (it ships beside the repository, not in it)")
    return UNIPERO


def executable(name: str) -> pathlib.Path:
    """Path of a real executable (venv first, then PATH) or skip with the reason."""
    candidate = VENV_BIN / name
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (run `make install`)")
    return pathlib.Path(found)


@pytest.fixture
def dp_code(aiida_localhost):
    """The real ``dp`` as an InstalledCode on the test computer."""
    from aiida.orm import InstalledCode

    return InstalledCode(label="dp", computer=aiida_localhost, filepath_executable=str(executable("dp"))).store()


@pytest.fixture(scope="session")
def tiny_pytorch_model(tmp_path_factory):
    """A real frozen PyTorch model (a few steps on Lennard-Jones frames), trained once per session."""
    from tests.helpers import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("pt"), executable("dp"), backend="pt")


@pytest.fixture
def calcjob_node_with_retrieved(aiida_localhost):
    """Factory: a finished CalcJobNode of ``entry_point`` with ``inputs`` and a retrieved folder of ``files``.

    Lets parsers run on recorded outputs without running the code (as aiida-quantumespresso's tests do).
    """
    from aiida.common.links import LinkType
    from aiida.orm import CalcJobNode, FolderData
    from aiida.plugins.entry_point import format_entry_point_string

    def factory(entry_point: str, inputs: dict, files: dict[str, bytes | str]):
        node = CalcJobNode(
            computer=aiida_localhost, process_type=format_entry_point_string("aiida.calculations", entry_point)
        )
        node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
        node.set_option("scheduler_stderr", "_scheduler-stderr.txt")  # as a launched CalcJob records it
        for label, value in inputs.items():
            value = value if value.is_stored else value.store()
            node.base.links.add_incoming(value, link_type=LinkType.INPUT_CALC, link_label=label)
        node.store()
        retrieved = FolderData()
        for name, content in files.items():
            import io

            data = content.encode() if isinstance(content, str) else content
            retrieved.base.repository.put_object_from_filelike(io.BytesIO(data), name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="retrieved")
        retrieved.store()
        return node

    return factory


@pytest.fixture(scope="session")
def daemon(daemon_client):
    """A running daemon for the session (module-scoped fixtures cannot use ``submit_and_await``)."""
    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon()
    return daemon_client


def await_process(node, timeout: float = 900):
    """Wait for a submitted process to terminate; fail the test with its report if it does not in time. A daemon
    whose workers the embedded broker lost is restarted, as ``campaign run`` does, with a warning."""
    import time
    import warnings

    from aiida.cmdline.utils.common import get_workchain_report

    from aiida_perovskite.stack import BrokerWatch

    broker = BrokerWatch(report=warnings.warn)
    start = time.monotonic()
    while not node.is_terminated:
        if time.monotonic() - start > timeout:
            pytest.fail(f"process <{node.pk}> did not finish in {timeout} s:\n{get_workchain_report(node, 'REPORT')}")
        time.sleep(1)
        broker.check()
    return node


@pytest.fixture(scope="session")
def session_computer(aiida_profile, tmp_path_factory):
    """A configured localhost computer usable from module- and session-scoped fixtures."""
    from aiida.orm import Computer

    computer = Computer(
        label="localhost-session",
        hostname="localhost",
        transport_type="core.local",
        scheduler_type="core.direct",
        workdir=str(tmp_path_factory.mktemp("scratch")),
    ).store()
    computer.set_minimum_job_poll_interval(0.0)
    computer.configure(safe_interval=0.0)
    return computer
