"""``aiida-perovskite setup``: profile, computer, codes and daemon, created if missing."""

from __future__ import annotations

import pathlib

import click

from aiida_perovskite.cli.root import cli
from aiida_perovskite.stack import (
    PROFILES_DIR,
    CodeSpec,
    SetupError,
    ensure_codes,
    ensure_computer,
    ensure_daemon,
    ensure_profile,
    load_yaml,
)


@cli.command("setup")
@click.option(
    "--config",
    "profile_file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=PROFILES_DIR / "embedded.yaml",
    show_default="profiles/embedded.yaml (SQLite + ZeroMQ)",
    help="Profile description; profiles/production.yaml for PostgreSQL + RabbitMQ.",
)
@click.option(
    "--computer",
    "computer_file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=PROFILES_DIR / "computers" / "localhost.yaml",
    show_default="profiles/computers/localhost.yaml",
)
@click.option(
    "--codes",
    "codes_file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=PROFILES_DIR / "codes" / "localhost.yaml",
    show_default="profiles/codes/localhost.yaml",
)
@click.option("--email", default="perovskite@localhost", show_default=True, help="Email of the default user.")
@click.option("--workers", type=int, default=None, help="Daemon workers (default: from the profile file).")
@click.option("--no-daemon", is_flag=True, help="Do not start the daemon.")
def setup(profile_file, computer_file, codes_file, email, workers, no_daemon) -> None:
    """Create the AiiDA profile, the localhost computer and the dp, lmp and cp2k codes if missing.

    Idempotent: run it as often as you like. It fails with a hint when an executable is missing.

    \b
    Example: the default profile (profiles/embedded.yaml), then PostgreSQL + RabbitMQ with 2 workers
      aiida-perovskite setup
      aiida-perovskite setup --config profiles/production.yaml --workers 2
    """
    report = click.echo
    try:
        spec = load_yaml(profile_file)
        profile = ensure_profile(spec, email=email, report=report)
        computer = ensure_computer(load_yaml(computer_file), report=report)
        ensure_codes(computer, CodeSpec.from_yaml(codes_file), report=report)
        if not no_daemon:
            ensure_daemon(profile, workers or spec.get("daemon_workers", 1), report=report)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.secho(f"ready: profile {profile.name!r}; try `verdi status` and `verdi code list`", fg="green")
