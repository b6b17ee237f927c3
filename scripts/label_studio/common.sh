# Shared by start.sh, stop.sh and backend.sh: where the servers' state lives,
# how to tell that a recorded PID is still the server start.sh launched, what
# a process listens on and whether a server answers.
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

# The whole command line of process $1 (-ww: however narrow COLUMNS says the
# terminal is, ps would cut it there); fails when no such process runs.
command_line() {
    ps -ww -o args= -p "$1" 2>/dev/null
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
    command=$(command_line "$pid") || return 1
    case $command in
    *"$venv/bin/label-studio start "*"--port $port "*) echo "$pid" ;;
    *) return 1 ;;
    esac
}

# Whether $1, a URL of one of our own loopback servers, answers 200 within $2
# seconds; with $3, asked with that API token. Run by the caller's $python.
answers_ok() {
    "$python" - "$@" <<'PY'
import sys, urllib.request
url, timeout, *token = sys.argv[1:]
request = urllib.request.Request(url, headers={"Authorization": f"Token {token[0]}"} if token else {})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own loopback server: never via a proxy
try:
    with opener.open(request, timeout=float(timeout)) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# Addresses (host:port) on which process $1 listens for TCP connections,
# read from /proc: its socket inodes matched against the kernel's tables.
# Run by the caller's $python.
listening() {
    "$python" - "$1" <<'PY'
import os, socket, struct, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if target.startswith("socket:["):
        inodes.add(target[8:-1])
for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
    try:
        lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(struct.pack("<I", word) for word in struct.unpack(f">{len(raw) // 4}I", raw))
            print(f"{socket.inet_ntop(family, raw)}:{int(port, 16)}")
PY
}
