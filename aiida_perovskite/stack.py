"""Create, if missing, the AiiDA profile, computer and codes that the project runs on.

Everything is described by the YAML files in the repository's ``profiles/`` folder; each step is idempotent
so that ``aiida-perovskite setup`` can be run before every job.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

__all__ = (
    "PROFILES_DIR",
    "BrokerWatch",
    "CodeSpec",
    "SetupError",
    "cached_processes",
    "ensure_codes",
    "ensure_computer",
    "ensure_daemon",
    "ensure_profile",
    "find_executable",
    "load_yaml",
    "profile_options",
    "put_venv_on_path",
)

PROFILES_DIR = pathlib.Path(__file__).resolve().parent.parent / "profiles"

Report = Callable[[str], None]


class SetupError(RuntimeError):
    """A setup step cannot be done; the message says how to fix it."""


def load_yaml(path: str | pathlib.Path) -> dict[str, Any]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise SetupError(
            f"{path} does not exist: run from a clone of the aiida-perovskite repository or pass --config FILE"
        )
    with path.open() as handle:
        return yaml.safe_load(handle) or {}


def cached_processes() -> list[str]:
    """Processes AiiDA takes from its cache when they already finished on the same inputs: the project's
    calcfunctions (pure functions of their inputs) and ``dp test`` jobs. A workflow step replayed after a daemon
    crash then does not run its finished calcfunctions again, and the final learning curve does not repeat a test
    an iteration already ran on the same held-out set."""
    import importlib
    import pkgutil

    import aiida_perovskite.calcfunctions as package

    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        names += [
            f"{module.__name__}.{name}"
            for name, value in vars(module).items()
            if getattr(value, "is_process_function", False) and value.__module__ == module.__name__
        ]
    return [*sorted(names), "aiida.calculations:perovskite.deepmd.test"]


def profile_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The AiiDA options of a profile of ``spec`` (profiles/<stack>.yaml): the file's, and the cached processes."""
    return {**(spec.get("options") or {}), "caching.enabled_for": cached_processes()}


def ensure_profile(spec: dict[str, Any], email: str, report: Report = print):
    """Load the profile named in ``spec``, creating it first if it does not exist; return it."""
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    name = spec["profile"]
    if name in config.profile_names:
        report(f"profile {name!r} exists")
    else:
        storage_config = dict(spec["storage"].get("config") or {})
        if spec["storage"]["backend"] == "core.sqlite_dos":
            storage_config.setdefault("filepath", str(pathlib.Path(config.dirpath) / "storage" / name))
        elif spec["storage"]["backend"] == "core.psql_dos":
            repository = pathlib.Path(config.dirpath) / "repository" / name
            storage_config.setdefault("repository_uri", repository.as_uri())
        create_profile(
            config,
            name=name,
            email=email,
            storage_backend=spec["storage"]["backend"],
            storage_config=storage_config,
            broker_backend=spec["broker"]["backend"],
            broker_config=spec["broker"].get("config") or None,
        )
        report(f"created profile {name!r} ({spec['storage']['backend']} + {spec['broker']['backend']})")
    for option, value in profile_options(spec).items():
        config.set_option(option, value, scope=name)
    if config.default_profile_name != name and (config.default_profile_name is None or spec.get("make_default", True)):
        config.set_default_profile(name, overwrite=True)
        report(f"profile {name!r} is now the default profile")
    config.store()
    return load_profile(name, allow_switch=True)


def ensure_computer(spec: dict[str, Any], report: Report = print):
    """Return the computer described by ``spec``, creating and configuring it if it is missing."""
    from aiida.common.exceptions import NotExistent
    from aiida.manage.configuration import get_config
    from aiida.orm import Computer, User

    label = spec["label"]
    try:
        computer = Computer.collection.get(label=label)
        report(f"computer {label!r} exists")
    except NotExistent:
        work_dir = spec["work_dir"].format(aiida_path=get_config().dirpath)
        computer = Computer(
            label=label,
            hostname=spec["hostname"],
            description=spec.get("description", ""),
            transport_type=spec["transport"],
            scheduler_type=spec["scheduler"],
            workdir=work_dir,
        ).store()
        computer.set_mpirun_command(spec.get("mpirun_command", "mpirun -np {tot_num_mpiprocs}").split())
        computer.set_default_mpiprocs_per_machine(spec.get("default_mpiprocs_per_machine", 1))
        computer.set_use_double_quotes(spec.get("use_double_quotes", False))
        if "minimum_job_poll_interval" in spec:
            computer.set_minimum_job_poll_interval(float(spec["minimum_job_poll_interval"]))
        report(
            f"created computer {label!r} (work dir {work_dir}, scheduler polled every "
            f"{computer.get_minimum_job_poll_interval():g} s)"
        )
    if not computer.is_user_configured(User.collection.get_default()):
        computer.configure(safe_interval=float(spec.get("safe_interval", 0.0)))
        report(f"configured computer {label!r} for the default user")
    return computer


@dataclasses.dataclass
class CodeSpec:
    label: str
    executable: str
    description: str = ""
    version_command: list[str] = dataclasses.field(default_factory=list)
    default_calc_job_plugin: str | None = None
    install_hint: str = ""
    prepend_text: str = ""

    @classmethod
    def from_yaml(cls, path: str | pathlib.Path) -> list[CodeSpec]:
        return [cls(label=label, **fields) for label, fields in load_yaml(path).items()]


def find_executable(spec: CodeSpec) -> pathlib.Path:
    """Absolute path of the executable: beside the running Python first (the venv), then on PATH."""
    beside_python = pathlib.Path(sys.executable).parent / spec.executable
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which(spec.executable)
    if found is None:
        raise SetupError(f"executable {spec.executable!r} for code {spec.label!r} not found: {spec.install_hint}")
    return pathlib.Path(found).resolve()


def check_executable(path: pathlib.Path, spec: CodeSpec, timeout: float = 120) -> str:
    """Run the version command; return its first line, or raise if the executable does not start."""
    try:
        result = subprocess.run(
            [str(path), *spec.version_command], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{path} does not start ({exc}): {spec.install_hint}") from exc
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SetupError(
            f"{path} {' '.join(spec.version_command)} failed with exit code {result.returncode}: "
            f"{output[-500:]}\n{spec.install_hint}"
        )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else ""


def ensure_codes(computer, specs: list[CodeSpec], report: Report = print) -> dict[str, Any]:
    """Register each code on ``computer`` unless an identical one exists; return them by label.

    A code whose executable no longer exists (an old clone) is hidden and relabelled so the label can be
    reused; a code pointing at another existing executable is kept and reported.
    """
    from aiida.orm import InstalledCode

    codes = {}
    for spec in specs:
        executable = find_executable(spec)
        existing = next(
            (
                code
                for code in InstalledCode.collection.find(filters={"label": spec.label})
                if code.computer.pk == computer.pk
            ),
            None,
        )
        if existing is not None:
            old = pathlib.Path(str(existing.filepath_executable))
            if old == executable or old.exists():
                if old != executable:
                    report(f"code {existing.full_label} kept: it points at {old}, not {executable}")
                else:
                    report(f"code {existing.full_label} exists")
                codes[spec.label] = existing
                continue
            existing.label = f"{spec.label}-stale-{existing.pk}"
            existing.is_hidden = True
            report(f"code {spec.label}@{computer.label} pointed at missing {old}: hidden as {existing.label}")
        version = check_executable(executable, spec)
        code = InstalledCode(
            label=spec.label,
            computer=computer,
            filepath_executable=str(executable),
            description=spec.description,
            default_calc_job_plugin=spec.default_calc_job_plugin,
            prepend_text=spec.prepend_text,
        ).store()
        report(f"created code {code.full_label} -> {executable} ({version})")
        codes[spec.label] = code
    return codes


def put_venv_on_path() -> None:
    """Make the executables beside the running Python (``verdi`` for the daemon) findable on PATH.

    aiida-core looks ``verdi`` up when it is first imported, so call this before importing it.
    """
    venv_bin = str(pathlib.Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])


def ensure_daemon(profile, workers: int, report: Report = print) -> None:
    """Start the daemon of ``profile`` with ``workers`` workers unless it runs and answers.

    A PID file alone is not a running daemon: after a machine stop it is stale, and a campaign submitted then
    would wait for ever. The daemon must answer a status call; otherwise it is started again (which removes a
    stale PID file)."""
    from aiida.engine.daemon.client import DaemonException, get_daemon_client

    client = get_daemon_client(profile.name)
    if client.is_daemon_running:
        try:
            client.get_status(timeout=10)
        except DaemonException as error:
            report(f"the daemon of {profile.name!r} does not answer ({type(error).__name__}); starting it again")
        else:
            report(f"daemon of {profile.name!r} is running")
            return
    client.start_daemon(number_workers=workers)
    report(f"started the daemon of {profile.name!r} with {workers} worker(s)")


class BrokerWatch:
    """Restarts the daemon when the embedded (ZeroMQ) broker has lost its workers' subscriptions.

    aiida-core 2.9's ZeroMQ broker removes a worker whose connection it judges dead (seen twice on this project's
    machine, under CPU load far beyond its cores) together with the worker's task subscription; the worker goes on
    with the processes it holds but never subscribes again, so every process submitted later stays 'created' for
    ever, without an error. The broker's status file then counts fewer task subscribers than the daemon has
    workers. A daemon restart makes the workers subscribe again; this client then drops its broker connection
    and runner, as any long-lived client must after a restart on that stack. RabbitMQ profiles are left alone.

    Call :meth:`check` from a loop that waits for processes; ``grace`` (s) lets freshly started workers subscribe.
    """

    def __init__(self, grace: float = 60.0, period: float = 10.0, report: Report = print):
        self.grace = grace
        self.period = period
        self.report = report
        self._since: float | None = None
        self._probed = -float("inf")

    def check(self) -> bool:
        """Restart the daemon if the workers have been missing from the broker for ``grace`` s (looked at once per
        ``period`` s, however often it is called); True if it did."""
        now = time.monotonic()
        if now - self._probed < self.period:
            return False
        self._probed = now
        missing = self.missing_workers()
        if not missing:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        if now - self._since < self.grace:
            return False
        from aiida.engine.daemon.client import DaemonException, get_daemon_client
        from aiida.manage import get_manager

        self.report(
            f"the ZeroMQ broker has lost {missing} daemon worker(s) for {now - self._since:.0f} s (new processes "
            "would wait for ever): restarting the daemon"
        )
        try:
            get_daemon_client().restart_daemon(wait=True)
        except DaemonException as error:  # a worker busy in a long step can outlast the call's timeout
            self.report(f"the daemon did not confirm its restart ({error}); looking again in {self.grace:.0f} s")
        manager = get_manager()
        manager.reset_broker()
        manager.reset_runner()
        self._since = None
        return True

    @staticmethod
    def missing_workers() -> int:
        """Running daemon workers without a task subscription at the broker (0 when unknown or not ZeroMQ)."""
        from aiida.brokers.zeromq.broker import ZeromqBroker
        from aiida.engine.daemon.client import DaemonException, get_daemon_client
        from aiida.manage import get_manager

        broker = get_manager().get_broker()
        client = get_daemon_client()
        if not isinstance(broker, ZeromqBroker) or not client.is_daemon_running:
            return 0
        status = broker.probe_service_status()
        if status.get("error") or time.time() - status.get("timestamp", 0) > 30:  # no live broker: not this fault
            return 0
        try:
            workers = int(client.get_numprocesses(timeout=10)["numprocesses"])
        except (DaemonException, KeyError, TypeError, ValueError):
            return 0
        return max(workers - int(status.get("task_subscribers", workers)), 0)
