"""The workflow as the tests run it: a private copy of its code to run Snakemake in, its rules as
Snakemake itself parses them, and the tiny configurations of the Snakemake runs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
WORKFLOW_PARTS = ("Snakefile", "config.yaml", "rules", "workflow", "profiles", "envs")
# The demo of the Snakemake tests: three tiny videos.
TINY_DEMO = {"seed": 5, "videos": 3, "seconds": 2, "fps": 10, "width": 160, "height": 120}
# The tiny end-to-end run (tests/test_workflow_end_to_end.py and tests/test_cluster.py): 4 demo videos
# of 2 s split 2/1/1 by seed 24, 6 frames labelled per video, 2 epochs of 3 steps of a small MobileNet.
TINY_WORKFLOW = dict(
    demo={**TINY_DEMO, "videos": 4},
    labelling={"frames_per_video": 6},
    split={"seed": 24, "train": 0.5, "val": 0.25, "test": 0.25},
    train={"backbone": "mobilenet128_0.25", "feature_size": 16, "epochs": 2, "steps": 3, "batch_size": 2,
           "learning_rate": 1e-3, "image_min_side": 96, "image_max_side": 128},
)


def snakemake_command():
    """The snakemake of the interpreter running the tests."""
    return [sys.executable, "-m", "snakemake"]


class WorkflowCopy:
    """A copy of the workflow's code in a temporary folder, with its own config."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True)
        for part in WORKFLOW_PARTS:
            source = REPO / part
            if source.is_dir():
                shutil.copytree(source, self.root / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, self.root / part)
        self.config = yaml.safe_load((self.root / "config.yaml").read_text())

    def set_config(self, **sections):
        """Update config sections, e.g. set_config(frames={"every_nth": 5}); writes config.yaml."""
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(self.config.get(section), dict):
                self.config[section].update(values)
            else:
                self.config[section] = values
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def snakemake(self, *args, check=True, timeout=1800, env=None):
        """Run snakemake in the copy; returns the CompletedProcess (stdout and stderr merged)."""
        command = snakemake_command() + ["--cores", "2", *args]
        result = subprocess.run(
            command,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}")
        return result

    def dry_run_jobs(self, *args):
        """The rules a dry run would run, with their job counts: {"extract_frames": 2, ...}."""
        output = self.snakemake(*args, "-n", "--quiet", "rules").stdout
        jobs = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
                jobs[parts[0]] = int(parts[1])
        return jobs


# Snakemake loads the workflow in a child process (loading runs rules/common.smk, which changes the
# process environment and working directory).
_DUMP_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ResourceSettings

with SnakemakeApi() as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"),
                            workdir=Path("."))._workflow
    rules = {}
    for rule in workflow.rules:
        conda = rule.conda_env
        rules[rule.name] = {
            "runs": not rule.norun,
            "conda": str((Path(rule.basedir) / conda).resolve()) if conda else None,
            "conda_as_written": conda,
            "shell": rule.shellcmd,
            # What is_local() says under a cluster executor: no job of its own.
            "local": rule.group is None and (rule.name in workflow._localrules or rule.norun),
            "resources": {name: value.value for name, value in rule.resources.items()
                          if not value.is_evaluable()},
        }
json.dump(rules, sys.stdout)
"""


def workflow_rules(root=REPO):
    """The workflow's rules in ``root`` as Snakemake parses them: {rule name: {"runs" (whether it runs a
    command), "conda" (its environment file), "conda_as_written", "shell", "local", "resources"}}."""
    result = subprocess.run([sys.executable, "-c", _DUMP_RULES], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"Snakemake could not load the workflow:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
