"""Benchmark of how well the detector learns in the demo's budget: the recipe before the last change to it
against config.yaml's, on the demo's data, in the same run, over several seeds.

Each contender trains the demo's model (config.yaml's ``train`` section) on
``results/voc`` (build it first: ``snakemake --cores 2 results/voc/splits.json``):

- ``today``: the recipe before, pinned: group-normalised heads, GIoU, a cosine
  schedule to a peak rate of 0.002 with the weight average, 10 x 100 steps, and
  keras-retinanet's augmentation with random rotation, shear and upside-down flips;
- ``new``: config.yaml's recipe and budget (``--epochs``, ``--steps`` and
  ``--set KEY=VALUE`` change it).

For each seed of ``--seeds`` they run one after the other, each as the workflow
runs it: the training stage, the best snapshot by validation mAP, its
conversion and the test split's evaluation, all as commands. Printed: per
epoch, images seen, CPU-seconds of training so far (the training process's
own, per epoch, which other load on a shared machine barely changes),
validation mAP@0.5 and mAP@[.5:.95]; then the test mAP@0.5 and mAP@[.5:.95]
of each chosen snapshot, their medians over the seeds against the targets
(test mAP@[.5:.95] >= 0.75 and mAP@0.5 >= 0.95) and the new recipe's training
CPU-seconds against today's (target: at most 1.0, by medians).

    .venv/bin/python bench/learning.py [--seeds 1 2 3] [--epochs E] [--steps S] [--only new] [--set KEY=VALUE ...]
"""
import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from machine import REPO, VOC, cpu_model, project_config, require_demo_dataset

CONTENDERS = {
    "today": {"epochs": 10, "steps": 100, "batch_size": 8, "learning_rate": 0.002, "lr_schedule": "cosine",
              "warmup_steps": 100, "ema": True, "ema_momentum": 0.98, "box_loss": "giou", "head_norm": "group",
              "augment": True, "rotate_shear": True, "flip_vertical": True},
    "new": {},
}
RECIPE = ("epochs", "steps", "batch_size", "learning_rate", "lr_schedule", "warmup_steps", "ema", "ema_momentum",
          "box_loss", "head_norm", "augment", "rotate_shear", "flip_vertical", "seed")
TEST_TARGETS = {"mAP": 0.95, "mAP_50_95": 0.75}
CPU_TARGET = 1.0


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def options(settings):
    """Settings (a config section) as a stage's options, as the workflow's rules write them."""
    flat = []
    for key, value in settings.items():
        flat += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flat


def run(command, log_path):
    """CPU-seconds of a command (its own and its children's)."""
    before = cpu_seconds_of_children()
    with open(log_path, "w") as log:
        result = subprocess.run([sys.executable, "-m", *command], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode:
        sys.exit(f"{command[0]} failed (exit {result.returncode}); its log {log_path} ends:\n"
                 + "\n".join(Path(log_path).read_text().splitlines()[-15:]))
    return cpu_seconds_of_children() - before


def train_and_test(name, settings, config, work):
    """Train one contender and evaluate its best snapshot on the test split: (epoch rows, test metrics, CPU-s)."""
    work.mkdir(parents=True)
    started = time.perf_counter()
    cpu = run(["detflow.train", str(VOC), "--metrics", str(work / "metrics.csv"),
               "--summary", str(work / "training.json"), "--snapshots", str(work / "snapshots"),
               "--tensorboard", str(work / "tensorboard"), "--classes", ",".join(config["classes"]),
               "--threads", "2", *options(settings)], work / "train.log")
    wall = time.perf_counter() - started
    run(["detflow.best_snapshot", str(work / "best.json"), str(work / "best.h5"),
         "--training", f"{name}={work / 'training.json'}", "--metric", "mAP"], work / "best.log")
    run(["detflow.convert", str(work / "best.h5"), str(work / "best.json"), str(work / "inference.h5"),
         *options(config["convert"])], work / "convert.log")
    run(["detflow.evaluate", str(work / "inference.h5"), str(VOC), "test", "--metrics-json",
         str(work / "test.json"), "--metrics-csv", str(work / "test.csv"), "--pr-curves", str(work / "pr.png"),
         "--confusion-csv", str(work / "confusion.csv"), "--confusion-png", str(work / "confusion.png"),
         "--classes", str(VOC / "classes.json"), *options(config["evaluate"])], work / "evaluate.log")
    with open(work / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    best = json.loads((work / "best.json").read_text())
    print(f"{name}: trained in {wall:.0f} s wall, {cpu:.0f} CPU-seconds (process); best epoch {best['epoch']}",
          flush=True)
    return rows, json.loads((work / "test.json").read_text()), cpu


def report(name, settings, rows, test, cpu):
    images_per_epoch = settings["steps"] * settings["batch_size"]
    print(f"\n{name}: {', '.join(f'{key}={settings[key]}' for key in RECIPE)}")
    print(f"{'epoch':>5} {'images':>7} {'CPU-s':>7} {'val mAP@0.5':>11} {'val mAP@[.5:.95]':>16}")
    spent = 0.0
    for row in rows:
        epoch = int(row["epoch"])
        spent += float(row["cpu_seconds"])
        print(f"{epoch:>5} {epoch * images_per_epoch:>7} {spent:>7.0f} {float(row['mAP']):>11.4f} "
              f"{float(row['mAP_50_95']):>16.4f}")
    print(f"test (best snapshot by val mAP): mAP@0.5 {test['mAP']:.4f}, mAP@[.5:.95] {test['mAP_50_95']:.4f}, "
          f"AP75 {test['AP75']:.4f}; {len(rows) * images_per_epoch} images, {cpu:.0f} CPU-seconds in all")


def summary(results):
    """Medians over the seeds against the targets, and the ratio of training CPU-seconds."""
    print(f"\n{'contender':<9} {'seeds':>5} {'test mAP@0.5':>24} {'test mAP@[.5:.95]':>24} {'CPU-s':>7}")
    for name, runs in results.items():
        maps = [test["mAP"] for _, test, _ in runs]
        strict = [test["mAP_50_95"] for _, test, _ in runs]
        cpu = statistics.median(run[2] for run in runs)
        print(f"{name:<9} {len(runs):>5} {' '.join(f'{v:.3f}' for v in maps):>16} ({statistics.median(maps):.3f}) "
              f"{' '.join(f'{v:.3f}' for v in strict):>16} ({statistics.median(strict):.3f}) {cpu:>7.0f}")
    if "new" in results:
        runs = results["new"]
        medians = {key: statistics.median(test[key] for _, test, _ in runs) for key in TEST_TARGETS}
        print("targets (medians of new): " + "; ".join(
            f"test {key} {medians[key]:.3f} {'met' if medians[key] >= target else 'NOT met'} (>= {target})"
            for key, target in TEST_TARGETS.items()))
    if len(results) == 2:
        ratio = statistics.median(run[2] for run in results["new"]) / statistics.median(
            run[2] for run in results["today"])
        print(f"new / today training CPU-seconds (medians): {ratio:.2f} "
              f"({'met' if ratio <= CPU_TARGET else 'NOT met'}: <= {CPU_TARGET})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="train.seed of each run")
    parser.add_argument("--epochs", type=int, default=None, help="default: config.yaml's train.epochs")
    parser.add_argument("--steps", type=int, default=None, help="default: config.yaml's train.steps")
    parser.add_argument("--only", choices=sorted(CONTENDERS), default=None, help="train one contender only")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="a train setting for the new recipe, e.g. ema_momentum=0.99 (YAML value)")
    args = parser.parse_args()
    require_demo_dataset()
    config = project_config()
    base = {key: value for key, value in config["train"].items()
            if key not in ("threads", "mem_mb", "runtime", "variants")}
    chosen = {name: {**base, **changes} for name, changes in CONTENDERS.items() if args.only in (None, name)}
    if "new" in chosen:
        chosen["new"].update({key: value for key, value in (("epochs", args.epochs), ("steps", args.steps)) if value})
        chosen["new"].update({key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)})
    print(f"CPU: {cpu_model()}; demo data {VOC}; the machine may be shared: CPU-seconds are the measure", flush=True)
    results = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as temporary:
        for seed in args.seeds:
            for name, settings in chosen.items():
                seeded = {**settings, "seed": seed}
                run_ = train_and_test(name, seeded, config, Path(temporary) / f"{name}{seed}")
                results[name].append(run_)
                report(name, seeded, *run_)
    summary(results)


if __name__ == "__main__":
    main()
