#!/usr/bin/env bash
# Stop the test cluster that scripts/slurm/start.sh started: cancel its jobs,
# then end its daemons (slurmd, slurmctld, slurmdbd, MariaDB, munged) in that
# order, and withdraw its configuration from /run/slurm/conf. Only processes recorded in $DETFLOW_SLURM_DIR/run/ that are still the
# daemons start.sh launched are signalled; anything else on the machine is left
# alone. State, configuration and logs stay for the next start (delete
# $DETFLOW_SLURM_DIR to start from scratch). Idempotent.
set -euo pipefail

source "$(dirname "$0")/common.sh"

stop_daemon() {
    local name=$1 pid
    pid=$(owned_pid "$name") || return 0
    kill -TERM "$pid"
    for _ in $(seq 30); do
        [ -d "/proc/$pid" ] || {
            say "stopped $name ($pid)"
            return 0
        }
        sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
    say "killed $name ($pid), it did not end within 30s"
}

if [ -f "$conf" ] && owned_pid slurmctld >/dev/null; then
    export SLURM_CONF=$conf
    jobs=$(squeue --noheader --format=%i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        say "cancelling jobs $(echo $jobs)"
        scancel $jobs || true
        for _ in $(seq 30); do
            [ -z "$(squeue --noheader --format=%i --states=RUNNING,COMPLETING 2>/dev/null)" ] && break
            sleep 1
        done
    fi
fi
for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    stop_daemon "$daemon"
done
if [ "$(readlink "$published_conf_dir")" = "$conf_dir" ]; then
    rm "$published_conf_dir"
    rmdir --ignore-fail-on-non-empty "$(dirname "$published_conf_dir")"
fi
