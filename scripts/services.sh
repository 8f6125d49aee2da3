#!/usr/bin/env bash
# Start the production stack's services from the Debian packages (PostgreSQL + RabbitMQ) and create the
# database role the tests use. Idempotent. Needs root (or sudo).
set -euo pipefail
sudo_cmd=""
[[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"

# RabbitMQ >= 3.8.15 closes consumers after 30 min, which kills long AiiDA processes: disable the timeout.
advanced=/etc/rabbitmq/advanced.config
if ! grep -q consumer_timeout "$advanced" 2>/dev/null; then
    echo '[{rabbit, [{consumer_timeout, undefined}]}].' | $sudo_cmd tee "$advanced" >/dev/null
fi

if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    $sudo_cmd service postgresql start >/dev/null
fi
if ! $sudo_cmd rabbitmqctl -q status >/dev/null 2>&1; then
    $sudo_cmd service rabbitmq-server start >/dev/null
fi
for _ in $(seq 60); do
    $sudo_cmd rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
done

user=${PEROVSKITE_PG_USER:-aiida}
password=${PEROVSKITE_PG_PASSWORD:-aiida}
if ! $sudo_cmd su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$user'\"" | grep -q 1; then
    $sudo_cmd su postgres -c "psql -qc \"CREATE USER $user WITH PASSWORD '$password' CREATEDB\""
fi
echo "services up: PostgreSQL (role $user) and RabbitMQ"
