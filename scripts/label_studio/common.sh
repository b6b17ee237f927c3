# Shared by start.sh and stop.sh: where the server's state lives, and how to
# tell that a recorded PID is still the server start.sh launched.
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
venv=${DETFLOW_LABEL_STUDIO_VENV:-$project/.venv-label-studio}
state=${DETFLOW_LABEL_STUDIO_DIR:-$project/.label-studio}
pid_file=$state/label-studio.pid
port_file=$state/label-studio.port
log_file=$state/label-studio.log
credentials=$state/credentials.env

say() {
    echo "label-studio: $*" >&2
}

fail() {
    say "$*"
    exit 1
}

# The recorded PID, when that process is still the Label Studio server that
# start.sh launched for this state folder (its command line names this
# environment's label-studio and the recorded port); nothing otherwise.
owned_pid() {
    local pid port command
    [ -s "$pid_file" ] && [ -s "$port_file" ] || return 1
    pid=$(cat "$pid_file")
    port=$(cat "$port_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    command=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
    case $command in
    *"$venv/bin/label-studio start "*"--port $port "*) echo "$pid" ;;
    *) return 1 ;;
    esac
}
