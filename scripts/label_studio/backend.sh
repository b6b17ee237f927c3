#!/usr/bin/env bash
# Start or stop the ML backend that serves the model's boxes to Label Studio
# (`detflow label-studio-backend`, run by the project's environment, .venv).
#
#     eval "$(scripts/label_studio/backend.sh start [PORT] [BACKEND OPTIONS])"
#     detflow label-studio connect         # once per project: Label Studio asks it from then on
#     scripts/label_studio/backend.sh stop
#
# start: runs the backend in the background, in the project folder, on
# 127.0.0.1:PORT (or $DETFLOW_LABEL_STUDIO_BACKEND_PORT, or config.yaml's
# label_studio.backend_port), reading frames from the folder Label Studio
# serves ($DETFLOW_LABEL_STUDIO_ROOT, default the project folder, as start.sh).
# Options after the port go to the backend (--model, --score-threshold, ...;
# their defaults are config.yaml's). It waits until the backend's /health
# answers (the model loads first; up to $DETFLOW_LABEL_STUDIO_BACKEND_WAIT
# seconds, default 300) and prints shell lines for the caller to evaluate:
# LABEL_STUDIO_ML_BACKEND_URL (what `detflow label-studio connect` reads) and
# LABEL_STUDIO_ML_BACKEND_PID. Idempotent: a backend that this script started
# and that still runs is reported, not started again.
#
# stop: ends exactly the process recorded in backend.pid, while it is still
# the backend this script started, and removes the PID file. Idempotent.
#
# The PID, port and log are in $DETFLOW_LABEL_STUDIO_DIR (default
# .label-studio/): backend.pid, backend.port, backend.log.
# Exit status 1: it did not start; the backend's own one-line reason (no model,
# a model for other classes, a port in use) is shown.
set -euo pipefail

source "$(dirname "$0")/common.sh"

python=${DETFLOW_PYTHON:-$project/.venv/bin/python}
root=${DETFLOW_LABEL_STUDIO_ROOT:-$project}
wait_s=${DETFLOW_LABEL_STUDIO_BACKEND_WAIT:-300}
backend_pid_file=$state/backend.pid
backend_port_file=$state/backend.port
backend_log=$state/backend.log

usage() {
    fail "usage: $0 start [PORT] [BACKEND OPTIONS] | stop"
}

# The recorded PID, when that process is still the backend this script
# started (its command line names the stage and the recorded port).
backend_pid() {
    local pid port command
    [ -s "$backend_pid_file" ] && [ -s "$backend_port_file" ] || return 1
    pid=$(cat "$backend_pid_file")
    port=$(cat "$backend_port_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    command=$(command_line "$pid") || return 1
    case "$command " in
    *"-m detflow.label_studio_backend --port $port "*) echo "$pid" ;;
    *) return 1 ;;
    esac
}

report() {
    local pid=$1 port=$2
    say "ML backend at http://127.0.0.1:$port (PID $pid, log $backend_log); connect it: detflow label-studio connect"
    echo "export LABEL_STUDIO_ML_BACKEND_URL=http://127.0.0.1:$port"
    echo "export LABEL_STUDIO_ML_BACKEND_PID=$pid"
}

configured_port() {
    (cd "$project" && "$python" -c \
        'from detflow.lib.config import project_config; print(project_config()["label_studio"]["backend_port"])')
}

start() {
    local port pid waited logged reason addresses
    [ -x "$python" ] || fail "no project environment at $python: run scripts/setup.sh first"
    mkdir -p "$state"
    chmod 700 "$state"
    if pid=$(backend_pid); then
        report "$pid" "$(cat "$backend_port_file")"
        return 0
    fi
    port=${DETFLOW_LABEL_STUDIO_BACKEND_PORT:-}
    if [ $# -gt 0 ] && [[ $1 != -* ]]; then
        port=$1
        shift
    fi
    [ -n "$port" ] || port=$(configured_port) || fail "no port given, and config.yaml gives none"
    [[ $port =~ ^[1-9][0-9]*$ ]] || fail "port must be a number from 1, not '$port'"

    say "starting the ML backend on 127.0.0.1:$port (log $backend_log)"
    logged=$(stat -c %s "$backend_log" 2>/dev/null || echo 0) # what earlier runs wrote to the log
    (
        cd "$project"
        # Its own session: a terminal's Ctrl+C does not reach it; stop ends it.
        exec setsid "$python" -m detflow.label_studio_backend --port "$port" --document-root "$root" "$@" \
            </dev/null >>"$backend_log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$backend_pid_file"
    echo "$port" >"$backend_port_file"

    for ((waited = 0; ; waited++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$backend_pid_file" "$backend_port_file"
            reason=$(tail -c +$((logged + 1)) "$backend_log" | grep '^error: ' | tail -n 1) || true
            [ -n "$reason" ] || tail -c +$((logged + 1)) "$backend_log" | tail -n 20 >&2
            fail "the ML backend did not start${reason:+: ${reason#error: }}"
        fi
        # Its own socket, not another program's on that port, and the model loaded.
        if listening "$pid" | grep -qxF "127.0.0.1:$port" && answers_ok "http://127.0.0.1:$port/health" 2; then
            break
        fi
        if [ "$waited" -ge "$wait_s" ]; then
            tail -n 20 "$backend_log" >&2
            stop
            fail "no answer on 127.0.0.1:$port after ${wait_s}s (log: $backend_log)"
        fi
        sleep 1
    done
    addresses=$(listening "$pid" | sort -u | tr '\n' ' ')
    if [ "$addresses" != "127.0.0.1:$port " ]; then
        stop
        fail "expected the ML backend to listen on 127.0.0.1:$port only, found: ${addresses:-nothing}"
    fi
    report "$pid" "$port"
}

# Whether process $1 still runs (an exited one waiting to be reaped does not).
running() {
    local status
    status=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $status != Z* ]]
}

stop() {
    local pid
    if ! pid=$(backend_pid); then
        rm -f "$backend_pid_file" "$backend_port_file"
        say "no ML backend running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        running "$pid" || break
        sleep 1
    done
    if running "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        say "killed $pid: still running 30s after SIGTERM"
    fi
    rm -f "$backend_pid_file" "$backend_port_file"
    say "ML backend stopped (PID $pid)"
}

[ $# -gt 0 ] || usage
command=$1
shift
case $command in
start) start "$@" ;;
stop) stop ;;
*) usage ;;
esac
