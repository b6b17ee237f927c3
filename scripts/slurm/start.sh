#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for the cluster tests and
# for trying the SLURM profile: munged, MariaDB, slurmdbd (accounting: sacct,
# sacctmgr), slurmctld and slurmd, from Debian's packages (installed with
# apt-get when missing; needs root).
#
# Everything listens on 127.0.0.1 only, on ports of its own, and keeps its
# state, logs and configuration in $DETFLOW_SLURM_DIR (default
# /tmp/detflow-slurm). The machine's own /etc/slurm, /etc/munge and MariaDB are
# not touched; the one thing outside that folder is the link /run/slurm/conf
# (see publish_configuration). Idempotent: daemons already running are left as
# they are. scripts/slurm/stop.sh ends exactly the daemons this script started.
#
# Standard output is one shell line that points SLURM's commands at the cluster:
#     eval "$(scripts/slurm/start.sh)"
# Exit status 2 says this machine cannot host it (no root, no packages, a SLURM
# of its own); 1, that it failed to start.
set -euo pipefail

source "$(dirname "$0")/common.sh"

unavailable() {
    say "cannot run here: $*"
    exit 2
}

cluster=detflow
slurmctld_port=16817
slurmd_port=16818
slurmdbd_port=16819
mariadb_port=16306
packages=(munge mariadb-server slurmctld slurmd slurmdbd slurm-client)

# Wait up to $1 seconds for the command after it to succeed; on time-out show
# the daemon's log ($2) and stop.
wait_for() {
    local seconds=$1 log=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    say "timed out after ${seconds}s waiting for: $*"
    [ -f "$log" ] && tail -n 20 "$log" >&2
    exit 1
}

install_packages() {
    local missing=()
    for command in munged munge mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
        command -v "$command" >/dev/null || missing+=("$command")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || unavailable "missing ${missing[*]} and no apt-get to install ${packages[*]}"
    say "installing ${packages[*]} (missing: ${missing[*]})"
    # The packages' own services must not start: policy-rc.d exit 101 forbids it.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local status=0
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt or dpkg process rather than fail at once.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    "${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >"$state/log/apt.log" 2>&1 ||
        { "${apt[@]}" update -q >>"$state/log/apt.log" 2>&1 &&
            "${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >>"$state/log/apt.log" 2>&1; } ||
        status=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    if [ "$status" -ne 0 ]; then
        tail -n 20 "$state/log/apt.log" >&2
        unavailable "apt-get could not install ${packages[*]} (log: $state/log/apt.log)"
    fi
}

# The SLURM daemons run in a UTS namespace of their own whose host name is
# "localhost": with CommunicationParameters=NoInAddrAny,NoCtldInAddrAny they
# then listen on 127.0.0.1 only, whatever this machine's name resolves to.
choose_node_name() {
    if unshare --uts true 2>/dev/null; then
        node=localhost
    else
        node=$(hostname -s)
        say "warning: no UTS namespace here; the daemons listen on the address of $node"
    fi
}

as_node() {
    if [ "$node" = localhost ]; then
        unshare --uts sh -c 'hostname localhost && exec "$@"' as_node "$@"
    else
        "$@"
    fi
}

write_configuration() {
    local node_line
    # This machine's CPUs and memory, as slurmd itself measures them.
    node_line=$(slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$node/")
    if [ ! -s "$state/mariadb/slurm.password" ]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$state/mariadb/slurm.password")
    fi
    cat >"$conf.new" <<EOF
# Written by scripts/slurm/start.sh: a one-node test cluster on loopback.
ClusterName=$cluster
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$slurmctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
# No cgroups in containers: track processes by parent, bind no CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue this long: the executor's squeue status
# mode (profiles/slurm) needs at least 120 s.
MinJobAge=300
# Accounting through slurmdbd, as on real clusters: the executor checks
# accounts with sacctmgr, and sacct keeps a record of every job.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$slurmdbd_port
# The munge socket for talking to slurmdbd (AuthInfo covers the other daemons).
AccountingStoragePass=$munge_socket
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# Two GPUs with no GPU behind them (/dev/null and /dev/zero): enough for
# SLURM to schedule and account --gpus=1 requests, two at a time, as two
# training variants on two GPUs, which is what the tests check.
GresTypes=gpu
$node_line Gres=gpu:2 NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # Rewritten only when it changes; running daemons then reread it.
    if cmp -s "$conf.new" "$conf"; then
        rm "$conf.new"
    else
        mv "$conf.new" "$conf"
        if owned_pid slurmctld >/dev/null; then
            reconfigure=1
        fi
    fi
    echo "NodeName=$node Name=gpu File=/dev/null,/dev/zero" >"$conf_dir/gres.conf"
    (
        umask 077
        cat >"$conf_dir/slurmdbd.conf" <<EOF
# Written by scripts/slurm/start.sh: accounting of the test cluster.
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CommunicationParameters=NoInAddrAny
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$slurmdbd_port
SlurmUser=root
PidFile=$state/run/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$mariadb_port
StorageUser=slurm
StoragePass=$(cat "$state/mariadb/slurm.password")
StorageLoc=slurm_acct_db
EOF
    )
}

# The executor runs `srun` inside each job with every SLURM_* variable removed,
# SLURM_CONF too, so that srun looks where SLURM's commands look without it:
# /etc/slurm/slurm.conf, then /run/slurm/conf, where a "configless" slurmd
# keeps the cluster's configuration. This cluster's is published there, as a
# symbolic link that stop.sh removes.
publish_configuration() {
    [ -e /etc/slurm/slurm.conf ] &&
        unavailable "this machine has a SLURM configuration of its own, /etc/slurm/slurm.conf: jobs' srun would read it"
    if [ "$(readlink "$published_conf_dir")" != "$conf_dir" ]; then
        [ -e "$published_conf_dir" ] &&
            unavailable "$published_conf_dir exists (a configless slurmd's?): jobs' srun would read it"
        mkdir -p "$(dirname "$published_conf_dir")"
        ln -s "$conf_dir" "$published_conf_dir"
    fi
}

start_munge() {
    if ! owned_pid munged >/dev/null; then
        if [ ! -s "$state/munge/munge.key" ]; then
            (umask 077 && head -c 1024 /dev/urandom >"$state/munge/munge.key")
        fi
        munged --force --socket="$munge_socket" --key-file="$state/munge/munge.key" \
            --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" \
            --seed-file="$state/munge/munged.seed"
    fi
    wait_for 20 "$state/log/munged.log" munge --socket="$munge_socket" --no-input
}

mariadb_sql() {
    mariadb --no-defaults --socket="$mariadb_socket" --user=root --batch "$@"
}

start_mariadb() {
    if ! owned_pid mariadbd >/dev/null; then
        if [ ! -d "$state/mariadb/data/mysql" ]; then
            mariadb-install-db --no-defaults --datadir="$state/mariadb/data" --user=root \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$state/log/mariadb-install.log" 2>&1 ||
                fail "mariadb-install-db failed (log: $state/log/mariadb-install.log)"
        fi
        setsid mariadbd --no-defaults --user=root --datadir="$state/mariadb/data" \
            --socket="$mariadb_socket" --bind-address=127.0.0.1 --port="$mariadb_port" \
            --pid-file="$state/run/mariadbd.pid" --log-error="$state/log/mariadbd.log" \
            --skip-log-bin --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
            --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    fi
    wait_for 60 "$state/log/mariadbd.log" mariadb_sql --execute "SELECT 1"
    mariadb_sql <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$state/mariadb/slurm.password")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

start_slurmdbd() {
    owned_pid slurmdbd >/dev/null || as_node slurmdbd
    wait_for 60 "$state/log/slurmdbd.log" sacctmgr --noheader list cluster
    if ! sacctmgr --noheader --parsable2 list cluster format=cluster | grep -qx "$cluster"; then
        sacctmgr --immediate add cluster "$cluster" >&2
    fi
}

node_ready() {
    case $(sinfo --noheader --nodes="$node" --format=%t) in
    idle | mix | alloc) return 0 ;; # a trailing * would mean "not responding"
    *) return 1 ;;
    esac
}

start_slurm() {
    owned_pid slurmctld >/dev/null || as_node slurmctld -f "$conf"
    wait_for 60 "$state/log/slurmctld.log" scontrol ping
    owned_pid slurmd >/dev/null || as_node slurmd -f "$conf"
    wait_for 60 "$state/log/slurmd.log" scontrol show node "$node"
    # A node drained by an earlier run (e.g. killed mid-job) is taken back.
    case $(sinfo --noheader --nodes="$node" --format=%t) in
    drain* | drng* | down*) scontrol update NodeName="$node" State=RESUME ;;
    esac
    wait_for 60 "$state/log/slurmd.log" node_ready
}

[ "$(id -u)" -eq 0 ] || unavailable "needs root (it starts slurmd and installs Debian packages)"
mkdir -p "$state"/{etc,run,log,munge,mariadb,slurmctld,slurmd}
chmod 755 "$state" "$state/munge"
install_packages
choose_node_name
export SLURM_CONF=$conf
write_configuration
publish_configuration
start_munge
start_mariadb
start_slurmdbd
start_slurm
[ -z "${reconfigure:-}" ] || scontrol reconfigure
say "running: configuration $conf, logs in $state/log"
echo "export SLURM_CONF=$conf"
