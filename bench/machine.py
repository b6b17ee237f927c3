"""What the benchmark scripts share: where the project is, its config, its outputs that some of them
measure, and what the machine they ran on is.

The scripts import the installed package (``from detflow... import ...``) and this module; run as
``.venv/bin/python bench/<script>.py``, a script's own folder is on ``sys.path``, so ``from machine
import ...`` finds this file.
"""
from pathlib import Path

from detflow.lib.config import read_config

REPO = Path(__file__).resolve().parent.parent
# The demo's dataset and the trained model, as the workflow writes them.
VOC = REPO / "results" / "voc"
MODEL = REPO / "results" / "model" / "inference.h5"


def project_config():
    """The project's config.yaml, validated as the workflow validates it (detflow.lib.config)."""
    return read_config(REPO / "config.yaml")


def cpu_model():
    """The processor's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"
