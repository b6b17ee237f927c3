#!/usr/bin/env bash
# Create (if absent) and fill the project's virtual environment in .venv.
# Idempotent: does nothing when the pins have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
stamp="$venv/.installed-$(cat requirements.txt requirements-retinanet.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ -e "$stamp" ]; then
    exit 0
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r requirements.txt
# keras-retinanet builds a Cython extension against the numpy above; its
# declared opencv-python requirement would pull a second cv2 build.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation --no-cache-dir \
    -r requirements-retinanet.txt
# The stages as `python -m detflow.<stage>` in the activated environment.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
rm -f "$venv"/.installed-*
touch "$stamp"
