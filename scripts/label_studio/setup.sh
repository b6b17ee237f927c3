#!/usr/bin/env bash
# Create (if absent) and fill Label Studio's own virtual environment, apart
# from the project's .venv (Label Studio brings Django and about 1 GB of
# packages whose pins would fight the workflow's).
#
# The environment is $DETFLOW_LABEL_STUDIO_VENV (default: .venv-label-studio
# in the project). Idempotent: does nothing when the pin below has not changed
# since the last successful run (a stamp file in the environment says so).
# Prints nothing on success but the environment's path.
set -euo pipefail
project=$(cd "$(dirname "$0")/../.." && pwd)
venv=${DETFLOW_LABEL_STUDIO_VENV:-$project/.venv-label-studio}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
pin="label-studio==1.23.2"
stamp="$venv/.installed-$(echo "$pin" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$pin"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
echo "$venv"
