#!/usr/bin/env bash
# A one-node Slurm cluster on this host from Debian's slurm-wlm (slurmctld + slurmd + munge), for the tests'
# `core.slurm` computer (profiles/computers/slurm-localhost.yaml). Idempotent. Needs root (or sudo).
#   scripts/slurm.sh          write /etc/slurm/slurm.conf for this host if it differs, start what is not running
#   scripts/slurm.sh stop     stop the daemons
set -euo pipefail
sudo_cmd=""
[[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"

if [[ "${1:-}" == "stop" ]]; then
    $sudo_cmd pkill -x slurmd || true
    $sudo_cmd pkill -x slurmctld || true
    exit 0
fi

host=$(hostname -s)
conf=$(cat <<EOF
# Written by aiida-perovskite scripts/slurm.sh: one node, every core schedulable, no accounting database.
ClusterName=perovskite
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
MinJobAge=60
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
if [[ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]]; then
    echo "$conf" | $sudo_cmd tee /etc/slurm/slurm.conf >/dev/null
    $sudo_cmd pkill -x slurmd || true
    $sudo_cmd pkill -x slurmctld || true
fi
$sudo_cmd mkdir -p /var/spool/slurmd /var/spool/slurmctld /var/log/slurm /run/munge
$sudo_cmd chown munge:munge /run/munge

if ! pgrep -x munged >/dev/null; then
    if [[ -z "$sudo_cmd" ]]; then su -s /bin/sh munge -c /usr/sbin/munged; else sudo -u munge /usr/sbin/munged; fi
fi
pgrep -x slurmctld >/dev/null || $sudo_cmd slurmctld
pgrep -x slurmd >/dev/null || $sudo_cmd slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
    [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]] && break
    sleep 1
done
[[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]] || {
    echo "slurm: node $host is '${state:-unreachable}'; see /var/log/slurm/" >&2
    exit 1
}
echo "slurm up: node $host ($(nproc) CPUs), partition debug"
