#!/usr/bin/env bash
# Stop the Label Studio server that scripts/label_studio/start.sh started:
# only the process recorded in $DETFLOW_LABEL_STUDIO_DIR/label-studio.pid,
# while it is still that server, and the processes it started (its session).
# Nothing else on the machine is signalled. The database, log and credentials
# stay for the next start. Idempotent: says so and succeeds when none runs.
set -euo pipefail

source "$(dirname "$0")/common.sh"

# The server and its descendants, parents first.
family() {
    local pids=("$1") index=0 child
    while [ "$index" -lt "${#pids[@]}" ]; do
        for child in $(ps -o pid= --ppid "${pids[$index]}" 2>/dev/null); do
            pids+=("$child")
        done
        index=$((index + 1))
    done
    echo "${pids[@]}"
}

if ! pid=$(owned_pid); then
    rm -f "$pid_file" "$port_file"
    say "not running"
    exit 0
fi
members=$(family "$pid")
kill -TERM $members 2>/dev/null || true
for _ in $(seq 30); do
    alive=
    for member in $members; do
        kill -0 "$member" 2>/dev/null && alive="$alive $member"
    done
    [ -z "$alive" ] && break
    sleep 1
done
if [ -n "$alive" ]; then
    kill -KILL $alive 2>/dev/null || true
    say "killed$alive: still running 30s after SIGTERM"
fi
rm -f "$pid_file" "$port_file"
say "stopped (PID $pid)"
