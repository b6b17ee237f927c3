# Shared by start.sh and stop.sh (sourced, not run): where the test cluster
# lives, and how to recognise the daemons that start.sh launched.

state=${DETFLOW_SLURM_DIR:-/tmp/detflow-slurm}
conf_dir=$state/etc
conf=$conf_dir/slurm.conf
published_conf_dir=/run/slurm/conf
munge_socket=$state/munge/munge.socket
mariadb_socket=$state/mariadb/mariadb.sock

say() { echo "slurm test cluster: $*" >&2; }

fail() {
    say "error: $*"
    exit 1
}

# Print the pid recorded in $state/run/<daemon>.pid when that process is alive
# and is the daemon start.sh launched (the right program, using this state
# directory); fail otherwise, so a stale pid file never names someone else's process.
owned_pid() {
    local name=$1 pidfile=$state/run/$1.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc 0-9 <"$pidfile")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(command -v "$name")")" ] || return 1
    if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qF "$state/" ||
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$conf"; then
        echo "$pid"
    else
        return 1
    fi
}
