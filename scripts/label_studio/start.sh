#!/usr/bin/env bash
# Start Label Studio (installed by scripts/label_studio/setup.sh) for labelling
# this project's frames, or report the one already running. Idempotent.
#
#     eval "$(scripts/label_studio/start.sh [PORT])"
#
# Standard output is shell lines a caller evaluates: LABEL_STUDIO_URL,
# LABEL_STUDIO_API_KEY (the API token, also what Label Studio's own SDK reads)
# and LABEL_STUDIO_PID. Progress and the sign-in for the browser go to stderr.
#
# - It listens on 127.0.0.1 only, on PORT (or $DETFLOW_LABEL_STUDIO_PORT, or a
#   free port), and the script checks that the server's only listening socket
#   is that one.
# - Everything it writes is in $DETFLOW_LABEL_STUDIO_DIR (default
#   .label-studio/ in the project): the database with every annotation, the
#   log, the PID file, the generated user and token (credentials.env, mode
#   600), and the config/data/cache folders that would otherwise go to
#   ~/.config, ~/.local/share and ~/.cache (XDG_*_HOME point there).
#   Delete that folder only when its annotations have been exported.
# - It needs no internet: Label Studio's start-up query of PyPI for a newer
#   version (LATEST_VERSION_CHECK), its usage reports (COLLECT_ANALYTICS) and
#   its error reports to sentry.io (SENTRY_DSN, FRONTEND_SENTRY_DSN) are off.
# - It serves the project's files to signed-in users of projects with a
#   Local Storage entry for them (LOCAL_FILES_SERVING_ENABLED, document root
#   $DETFLOW_LABEL_STUDIO_ROOT, default the project folder): the tasks made by
#   `python -m detflow.label_studio tasks` point there.
# - It may call an ML backend on 127.0.0.1 (scripts/label_studio/backend.sh
#   serves the model's boxes there), and nothing else it would refuse by
#   default: Label Studio 1.23 refuses URLs in reserved networks for ML
#   backends and their webhooks (SSRF protection). Its own list of them
#   (core/utils/io.py, validate_ip) less 127.0.0.0/8 replaces the default
#   (USE_DEFAULT_BANNED_SUBNETS off, USER_ADDITIONAL_BANNED_SUBNETS).
# - The first start creates the database (about a minute); later ones are
#   quicker. It waits up to $DETFLOW_LABEL_STUDIO_WAIT seconds (default 300).
#
# scripts/label_studio/stop.sh stops exactly the process this script started.
# Exit status 1: it did not start (the log's end is shown).
set -euo pipefail

source "$(dirname "$0")/common.sh"

root=${DETFLOW_LABEL_STUDIO_ROOT:-$project}
# Label Studio 1.23.2's reserved networks (core/utils/io.py) but loopback: see above.
banned_subnets=0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,169.254.0.0/16,172.16.0.0/12,192.0.0.0/24
banned_subnets+=,192.0.2.0/24,192.88.99.0/24,192.168.0.0/16,198.18.0.0/15,198.51.100.0/24,203.0.113.0/24
banned_subnets+=,224.0.0.0/4,233.252.0.0/24,240.0.0.0/4,255.255.255.255/32
banned_subnets+=,::/128,::1/128,::ffff:0:0/96,::ffff:0:0:0/96,64:ff9b::/96,64:ff9b:1::/48
banned_subnets+=,100::/64,2001:0000::/32,2001:20::/28,2001:db8::/32,2002::/16,fc00::/7
banned_subnets+=,fe80::/10,ff00::/8
wait_s=${DETFLOW_LABEL_STUDIO_WAIT:-300}
python=$venv/bin/python
[ -x "$venv/bin/label-studio" ] || fail "not installed in $venv: run scripts/label_studio/setup.sh first"
[ -d "$root" ] || fail "document root $root is not a folder"
root=$(cd "$root" && pwd -P)

report() {
    local pid=$1 port=$2 user token
    user=$(sed -n 's/^LABEL_STUDIO_USERNAME=//p' "$credentials")
    token=$(sed -n 's/^LABEL_STUDIO_USER_TOKEN=//p' "$credentials")
    say "running at http://127.0.0.1:$port (PID $pid, log $log_file); in the browser, sign in as $user with the password in $credentials"
    echo "export LABEL_STUDIO_URL=http://127.0.0.1:$port"
    echo "export LABEL_STUDIO_API_KEY=$token"
    echo "export LABEL_STUDIO_PID=$pid"
}

# Whether Label Studio on port $1 accepts the token of credentials.env.
token_works() {
    answers_ok "http://127.0.0.1:$1/api/current-user/whoami" 10 "$(sed -n 's/^LABEL_STUDIO_USER_TOKEN=//p' "$credentials")"
}

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
    "$python" -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
}

mkdir -p "$state"
chmod 700 "$state"
if pid=$(owned_pid); then
    report "$pid" "$(cat "$port_file")"
    exit 0
fi

port=${1:-${DETFLOW_LABEL_STUDIO_PORT:-}}
if [ -z "$port" ]; then
    port=$(free_port)
elif ! [[ $port =~ ^[0-9]+$ ]]; then
    fail "port must be a number, not '$port'"
elif port_in_use "$port"; then
    # Label Studio would silently move to the next free port.
    fail "port $port on 127.0.0.1 is in use; choose another one or leave it out"
fi

if [ ! -s "$credentials" ]; then
    (
        umask 077
        {
            echo "LABEL_STUDIO_USERNAME=detflow@localhost"
            echo "LABEL_STUDIO_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
            echo "LABEL_STUDIO_USER_TOKEN=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        } >"$credentials"
    )
fi
mkdir -p "$state/data" "$state/xdg/config" "$state/xdg/data" "$state/xdg/cache"

say "starting Label Studio on 127.0.0.1:$port (state in $state, serving files under $root)"
(
    set -a
    source "$credentials"
    set +a
    export LABEL_STUDIO_BASE_DATA_DIR=$state/data
    export XDG_CONFIG_HOME=$state/xdg/config XDG_DATA_HOME=$state/xdg/data XDG_CACHE_HOME=$state/xdg/cache
    export LABEL_STUDIO_LATEST_VERSION_CHECK=false LABEL_STUDIO_COLLECT_ANALYTICS=false
    export LABEL_STUDIO_SENTRY_DSN= LABEL_STUDIO_FRONTEND_SENTRY_DSN=
    export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=$root
    export LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS=false LABEL_STUDIO_USER_ADDITIONAL_BANNED_SUBNETS=$banned_subnets
    cd "$state"
    # Its own session: stop.sh ends the server with everything it started.
    exec setsid "$venv/bin/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$port" \
        --enable-legacy-api-token --log-level WARNING </dev/null >>"$log_file" 2>&1
) &
pid=$!
echo "$pid" >"$pid_file"
echo "$port" >"$port_file"

for ((waited = 0; ; waited++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$log_file" >&2
        rm -f "$pid_file" "$port_file"
        fail "Label Studio exited during start-up (log: $log_file)"
    fi
    answers_ok "http://127.0.0.1:$port/health/" 5 && break
    if [ "$waited" -ge "$wait_s" ]; then
        tail -n 20 "$log_file" >&2
        "$(dirname "$0")/stop.sh"
        fail "no answer on 127.0.0.1:$port after ${wait_s}s (log: $log_file)"
    fi
    sleep 1
done

addresses=$(listening "$pid" | sort -u | tr '\n' ' ')
if [ "$addresses" != "127.0.0.1:$port " ]; then
    "$(dirname "$0")/stop.sh"
    fail "expected the server to listen on 127.0.0.1:$port only, found: ${addresses:-nothing}"
fi
token_works "$port" ||
    say "warning: the server refuses the token of $credentials (was that file replaced after the database was made?)"
report "$pid" "$port"
