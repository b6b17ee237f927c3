"""Best snapshot stage: choose the training snapshot to keep by reading the
TensorBoard event files with tensorboard's own event reader.

The metric is validation ``mAP`` (maximised) or training ``loss`` (minimised).
Keras's TensorBoard callback writes them as ``epoch_mAP`` and ``epoch_loss``
in the ``train`` run, at step = epoch index counted from 0, while snapshots are
numbered by epoch counted from 1: step s is snapshot s + 1. Ties go to the
earliest epoch. A step written twice (an epoch redone after a resumed run was
killed between logging it and saving its snapshot) counts with its last value.

Writes ``best.json`` (metric, value, epoch, step, snapshot, every epoch's
value, and what a user of the model needs: backbone, FPN width, classes,
image sizes) and a copy of the chosen snapshot at a fixed path.
"""
import argparse
import json
import logging
import math
import shutil
from pathlib import Path

from detflow.lib.cli import InputError, run
from detflow.lib.files import replacing, write_atomically
from detflow.lib.selection import METRICS, ranked_steps
from detflow.lib.tensorboard_logs import read_scalars

log = logging.getLogger(__name__)


def read_metric(tensorboard_run, metric):
    """{step: value} of a selection metric (``mAP`` or ``loss``) in a TensorBoard run folder."""
    return read_scalars(tensorboard_run, METRICS[metric][0])


def choose(values, metric):
    """The best step of ``values`` for ``metric``; non-finite values never win."""
    finite = {step: value for step, value in values.items() if math.isfinite(value)}
    if not finite:
        raise InputError(metric, f"every logged {metric} is NaN or infinite")
    return ranked_steps(finite, metric)[0]


def select_best_snapshot(training_json, metric, best_json, best_snapshot):
    """Choose the best epoch by ``metric`` from the event files named in ``training_json``,
    copy its snapshot to ``best_snapshot`` and describe the choice in ``best_json``."""
    training = json.loads(Path(training_json).read_text())
    tensorboard_run = Path(training["tensorboard_dir"]) / training["tensorboard_run"]
    values = read_metric(tensorboard_run, metric)
    epochs = training["epochs_completed"]
    values = {step: value for step, value in values.items() if step < epochs}
    if not values:
        raise InputError(tensorboard_run, f"no {metric} logged for the {epochs} epoch(s) of training.json")
    step = choose(values, metric)
    snapshot = Path(training["snapshot_dir"]) / training["snapshot_pattern"].format(epoch=step + 1)
    if not snapshot.is_file():
        raise InputError(snapshot, f"is missing, but epoch {step + 1} is the best by {metric}")
    best_snapshot = Path(best_snapshot)
    best_snapshot.parent.mkdir(parents=True, exist_ok=True)
    with replacing(best_snapshot) as partial:
        shutil.copyfile(snapshot, partial)
    best = {
        "metric": metric,
        "tag": METRICS[metric][0],
        "goal": "max" if METRICS[metric][1] else "min",
        "value": values[step],
        "epoch": step + 1,
        "step": step,
        "snapshot": str(snapshot),
        "best_snapshot": str(best_snapshot),
        "values": [{"epoch": s + 1, "step": s, "value": v} for s, v in values.items()],
        "backbone": training["backbone"],
        "feature_size": training["feature_size"],
        "classes": training["classes"],
        "image_min_side": training["settings"]["image_min_side"],
        "image_max_side": training["settings"]["image_max_side"],
        "training_run": training.get("fingerprint"),  # absent from a training.json older than this field
    }
    write_atomically(best_json, json.dumps(best, indent=2) + "\n")
    log.info("best epoch by %s: %d (%s = %.4f), snapshot %s", metric, step + 1, metric, values[step], snapshot)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("training_json", help="training.json written by the training stage")
    parser.add_argument("best_json", help="where to write the description of the choice")
    parser.add_argument("best_snapshot", help="where to copy the chosen snapshot (.h5)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="mAP",
                        help="mAP: validation mAP, maximised; loss: training loss, minimised")
    args = parser.parse_args(argv)
    select_best_snapshot(args.training_json, args.metric, args.best_json, args.best_snapshot)


if __name__ == "__main__":
    run(main)
