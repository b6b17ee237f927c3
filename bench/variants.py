"""Benchmark: two training variants run at the same time on a SLURM cluster against the same two run one
after the other.

A tiny configuration of the workflow (the settings of the tests' tiny end-to-end run: 4 demo videos of
2 s, 6 frames labelled per video, a small MobileNet) with two variants of one CPU each, run by this
interpreter's ``python -m snakemake`` in a private copy of the workflow in a temporary folder (Snakefile,
rules, workflow, profiles, envs, and config.yaml with those settings merged in), on the test cluster of
scripts/slurm/start.sh (one node, 2 CPUs, 2 fake GPUs; needs root) with profiles/slurm: its data stages
once, beforehand; then only the two training jobs, alternately in parallel (``--resources gpu=2``: the
cluster runs both at once) and one after the other (``--resources gpu=1``: Snakemake submits the second
when the first has ended), ``--repeats`` times each. Measured from SLURM's accounting (sacct): the span
from the first training job's start to the last one's end, and the CPU seconds the jobs used (TotalCPU;
the same work either way, so it shows what other load did to the wall times). Expected ratio (one after
the other / parallel): close to 2.

    .venv/bin/python bench/variants.py [--repeats 2] [--steps 12]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from machine import REPO, cpu_model, project_config

# What of the project a run of the workflow needs.
WORKFLOW_PARTS = ("Snakefile", "config.yaml", "rules", "workflow", "profiles", "envs")
# The tiny settings (the tests' tiny end-to-end run): 4 demo videos of 2 s split 2/1/1 by seed 24, 6 frames
# labelled per video, epochs of a small MobileNet.
TINY = {
    "demo": {"seed": 5, "videos": 4, "seconds": 2, "fps": 10, "width": 160, "height": 120},
    "labelling": {"frames_per_video": 6},
    "split": {"seed": 24, "train": 0.5, "val": 0.25, "test": 0.25},
    "train": {"backbone": "mobilenet128_0.25", "feature_size": 16, "epochs": 2, "steps": 3, "batch_size": 2,
              "learning_rate": 1e-3, "image_min_side": 96, "image_max_side": 128},
}
VARIANTS = {"small": {"threads": 1}, "wider": {"threads": 1, "feature_size": 24}}
TRAININGS = [f"results/training/{variant}/training.json" for variant in VARIANTS]
SLURM_RUN = ["--workflow-profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "1",
             "--seconds-between-status-checks", "1"]
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


def seconds(text):
    """sacct's [DD-][HH:]MM:SS[.mmm] as seconds."""
    days, _, clock = text.rpartition("-")
    parts = [float(part) for part in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return (int(days) if days else 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def training_jobs(env, run_id):
    """(span of the training jobs in s, their CPU seconds, their count) of one Snakemake run, from sacct."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    # Without -X: a job's own line then sums the CPU time of its steps (with -X it says 0).
    output = subprocess.run(["sacct", "--parsable2", "--noheader", "--starttime", since, "--name", run_id,
                             "--format=Comment,State,Start,End,TotalCPU"], env=env, capture_output=True, text=True,
                            check=True).stdout
    jobs = [line.split("|") for line in output.splitlines() if line.startswith("rule_train_")]
    assert all(state == "COMPLETED" for _, state, _, _, _ in jobs), output
    starts = [datetime.fromisoformat(start) for _, _, start, _, _ in jobs]
    ends = [datetime.fromisoformat(end) for _, _, _, end, _ in jobs]
    return (max(ends) - min(starts)).total_seconds(), sum(seconds(cpu) for *_, cpu in jobs), len(jobs)


def workflow_copy(root, settings):
    """A copy of the workflow at ``root`` whose config.yaml is the project's with ``settings`` ({section:
    {key: value}}) merged in; returns ``root``."""
    root.mkdir(parents=True)
    for part in WORKFLOW_PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / part, root / part)
    config = project_config()
    for section, values in settings.items():
        config[section] = {**config[section], **values}
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def snakemake(root, *args, env=None, timeout=1800):
    """Run Snakemake (this interpreter's) in the copy at ``root`` on 2 cores; its output (stdout and stderr)."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed (exit {result.returncode}); its output ends:\n"
                 f"{result.stdout[-6000:]}")
    return result.stdout


def run_trainings(root, env, gpus):
    shutil.rmtree(root / "results" / "training", ignore_errors=True)
    started = time.monotonic()
    output = snakemake(root, *SLURM_RUN, "--resources", f"gpu={gpus}", "--", *TRAININGS, env=env, timeout=3600)
    wall = time.monotonic() - started
    span, cpu, count = training_jobs(env, RUN_ID.search(output).group(1))
    assert count == len(VARIANTS), output[-3000:]
    return span, cpu, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating")
    parser.add_argument("--steps", type=int, default=12, help="training steps per epoch (2 epochs)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    started = subprocess.run([str(REPO / "scripts" / "slurm" / "start.sh")], capture_output=True, text=True)
    if started.returncode != 0:
        sys.exit(f"the test cluster did not start: {started.stderr.strip().splitlines()[-1]}")
    env = {**os.environ, "SLURM_CONF": started.stdout.strip().split("=", 1)[1], "SBATCH_ACCOUNT": "root"}
    settings = {**TINY, "train": {**TINY["train"], "steps": args.steps, "mem_mb": 3000, "runtime": 30,
                                  "variants": VARIANTS}}
    with tempfile.TemporaryDirectory() as folder:
        root = workflow_copy(Path(folder) / "project", settings)
        snakemake(root, "results/voc/training_inputs.json", "results/voc/classes.json")  # the data, locally
        results = {"parallel": [], "one after the other": []}
        for _ in range(args.repeats):
            results["parallel"].append(run_trainings(root, env, gpus=2))
            results["one after the other"].append(run_trainings(root, env, gpus=1))
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, shared with other work while measured "
          f"(1-min load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
    print(f"two variants ({', '.join(VARIANTS)}), 2 epochs of {args.steps} steps, 1 CPU and 1 GPU slot each, "
          f"{args.repeats} runs of each kind, medians:")
    for kind, runs in results.items():
        span, cpu, wall = (statistics.median(run[index] for run in runs) for index in range(3))
        print(f"  {kind:20s} training span {span:6.1f} s, CPU {cpu:6.1f} s, Snakemake wall {wall:6.1f} s")
    ratio = statistics.median(r[0] for r in results["one after the other"]) / statistics.median(
        r[0] for r in results["parallel"])
    print(f"ratio (one after the other / parallel, training span): {ratio:.2f}x (expected close to 2x)")


if __name__ == "__main__":
    main()
