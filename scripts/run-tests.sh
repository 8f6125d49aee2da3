#!/usr/bin/env bash
# Run the test suite on one storage stack or both:
#   scripts/run-tests.sh embedded      SQLite + ZeroMQ (no service)
#   scripts/run-tests.sh production    PostgreSQL + RabbitMQ (started here from the Debian packages)
#   scripts/run-tests.sh both          (default) the whole suite on embedded, then on production every
#                                      test not marked slow (the daemon, storage and parser tests; the slow
#                                      ones run real engines, whose behaviour does not depend on the stack)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
which_stack=${1:-both}
shift || true

run() {
    echo "==> tests on the $1 stack"
    # -rs: every skip with its reason; --durations: the slowest tests, to keep the suite within its budget
    PEROVSKITE_TEST_STACK=$1 .venv/bin/pytest -q -rs --durations=15 -p no:cacheprovider "${@:2}"
}

# the one-node Slurm cluster of tests/test_slurm.py (the tests skip, saying why, if it cannot start)
scripts/slurm.sh || echo "warning: no Slurm cluster; tests/test_slurm.py will be skipped" >&2

case "$which_stack" in
    embedded) run embedded "$@" ;;
    production) scripts/services.sh && run production "$@" ;;
    both) run embedded "$@" && scripts/services.sh && run production -m "not slow" "$@" ;;
    *) echo "unknown stack '$which_stack': use embedded, production or both" >&2; exit 2 ;;
esac
