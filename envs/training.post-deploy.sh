#!/usr/bin/env bash
# Run by Snakemake inside the new training environment (--use-conda).
# keras-retinanet builds a Cython extension against the environment's numpy;
# its declared opencv-python requirement would pull a second cv2 build, and a
# wheel cached for another numpy fails at import: hence the three options, as
# in scripts/setup.sh. Same pin as ../requirements-retinanet.txt.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation --no-cache-dir keras-retinanet==1.0.0
