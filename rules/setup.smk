# What must come before the config is read: the package on the path of Snakemake and of every job, and the
# config files read by the workflow's own checked loader (detflow.lib.config), so that a bad file is named
# with its line and reason, and a key given twice or a NaN is refused instead of silently taken.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

PACKAGE_ROOT = Path(workflow.basedir) / "workflow"
sys.path.insert(0, str(PACKAGE_ROOT))
# Jobs (local, SLURM or in a conda env) run the stages as `python -m detflow.<stage>`.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p))
# Their `python` is the one running Snakemake (e.g. .venv/bin/snakemake without activating .venv); a rule's conda env comes first.
os.environ.update(PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))

from detflow.lib.cli import InputError
from detflow.lib.config import CONFIG_FILE, load_config_file

# config.yaml, then the --configfile files (which Snakemake has read already) on top of it.
for config_file in [CONFIG_FILE, *workflow.config_settings.configfiles]:
    try:
        load_config_file(config_file)
    except InputError as error:
        raise WorkflowError(f"invalid configuration: {error}")
