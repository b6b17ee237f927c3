"""What the benchmark scripts share: where the project is, its config, its outputs that some of them
measure, and what the machine they ran on is.

The scripts import the installed package (``from detflow... import ...``) and this module; run as
``.venv/bin/python bench/<script>.py``, a script's own folder is on ``sys.path``, so ``from machine
import ...`` finds this file.
"""
import sys
from pathlib import Path

from detflow.lib.config import read_config
from detflow.lib.data.voc_tree import VocTree

REPO = Path(__file__).resolve().parent.parent
# The demo's dataset and the trained model, as the workflow writes them.
VOC = REPO / "results" / "voc"
MODEL = REPO / "results" / "model" / "inference.h5"


def project_config():
    """The project's config.yaml, validated as the workflow validates it (detflow.lib.config)."""
    return read_config(REPO / "config.yaml")


def require_demo_dataset():
    """Exit with the command that builds it when the demo's dataset or one of its splits is not there yet."""
    if not all(VocTree(VOC).split_file(split).is_file() for split in ("train", "val", "test")):
        sys.exit(f"{VOC} is missing: build the demo's dataset with "
                 "`.venv/bin/snakemake --cores all results/voc/splits.json`")


def require_model(path):
    """Exit with the command that trains one when the inference model ``path`` is not there yet."""
    if not path.is_file():
        sys.exit(f"{path} is missing: train a model first (`.venv/bin/snakemake --cores all "
                 "results/model/inference.h5`), or pass --model")


def cpu_model():
    """The processor's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"
