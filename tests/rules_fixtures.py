"""The workflow's rules as Snakemake itself parses them: name, whether the rule
runs a command, its conda environment file, its shell command and resources.

Snakemake loads the workflow in a child process (loading runs rules/common.smk,
which changes the process environment and working directory)."""
import json
import subprocess
import sys

from conftest import REPO

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
    """{rule name: {"runs", "conda", "conda_as_written", "shell", "local", "resources"}} of the workflow in ``root``."""
    result = subprocess.run([sys.executable, "-c", _DUMP_RULES], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"Snakemake could not load the workflow:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
