"""Shared test fixtures: a private copy of the workflow to run Snakemake in, and
the paths of the real data in ../shared (tests using it skip when absent)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PLUMS = REPO.parent / "shared" / "data" / "plums"
WORKFLOW_PARTS = ("Snakefile", "config.yaml", "rules", "workflow", "profiles", "envs")


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


@pytest.fixture
def workflow_copy(tmp_path):
    return WorkflowCopy(tmp_path / "project")


@pytest.fixture
def plums():
    if not (PLUMS / "PlumsVOC.zip").exists():
        pytest.skip("../shared/data/plums is absent")
    return PLUMS
