"""Best snapshot stage: choose the training snapshot to keep, across every
training variant, by reading the TensorBoard event files with tensorboard's
own event reader.

The metric is validation ``mAP`` (maximised) or training ``loss`` (minimised).
Keras's TensorBoard callback writes them as ``epoch_mAP`` and ``epoch_loss``
in the ``train`` run, at step = epoch index counted from 0, while snapshots are
numbered by epoch counted from 1: step s is snapshot s + 1. Ties go to the
earliest epoch, and between variants to the one listed first (config order).
A step written twice (an epoch redone after a resumed run was killed between
logging it and saving its snapshot) counts with its last value.

Writes ``best.json`` (the chosen variant, metric, value, epoch, step,
snapshot, its every epoch's value, what a user of the model needs: backbone,
FPN width, classes, image sizes; and each variant's best epoch and value)
and a copy of the chosen snapshot at a fixed path.
"""
import argparse
import json
import logging
import math
import shutil
from pathlib import Path

from detflow.lib.cli import InputError, run
from detflow.lib.files import replacing, write_atomically
from detflow.lib.training.selection import METRICS, ranked_steps
from detflow.lib.training.tensorboard_logs import read_scalars

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


def variant_best(name, training_json, metric):
    """One variant's training: its every epoch's value of ``metric`` from its event files, and its best step."""
    training = json.loads(Path(training_json).read_text())
    tensorboard_run = Path(training["tensorboard_dir"]) / training["tensorboard_run"]
    values = read_metric(tensorboard_run, metric)
    epochs = training["epochs_completed"]
    values = {step: value for step, value in values.items() if step < epochs}
    if not values:
        raise InputError(tensorboard_run, f"no {metric} logged for the {epochs} epoch(s) of {training_json}")
    return {"variant": name, "training_json": str(training_json), "training": training, "values": values,
            "step": choose(values, metric)}


def select_best_snapshot(trainings, metric, best_json, best_snapshot):
    """Choose the best epoch of all variants by ``metric`` from the event files named in their training.json
    (``trainings``: {variant: training.json}, in config order, which breaks ties between variants), copy its
    snapshot to ``best_snapshot`` and describe the choice, and every variant's best, in ``best_json``."""
    runs = [variant_best(name, path, metric) for name, path in trainings.items()]
    winner = runs[ranked_steps({index: run["values"][run["step"]] for index, run in enumerate(runs)}, metric)[0]]
    training, values, step = winner["training"], winner["values"], winner["step"]
    snapshot = Path(training["snapshot_dir"]) / training["snapshot_pattern"].format(epoch=step + 1)
    if not snapshot.is_file():
        raise InputError(snapshot, f"is missing, but epoch {step + 1} of variant {winner['variant']} "
                                   f"is the best by {metric}")
    best_snapshot = Path(best_snapshot)
    best_snapshot.parent.mkdir(parents=True, exist_ok=True)
    with replacing(best_snapshot) as partial:
        shutil.copyfile(snapshot, partial)
    best = {
        "metric": metric,
        "tag": METRICS[metric][0],
        "goal": "max" if METRICS[metric][1] else "min",
        "variant": winner["variant"],
        "value": values[step],
        "epoch": step + 1,
        "step": step,
        "snapshot": str(snapshot),
        "best_snapshot": str(best_snapshot),
        "training_json": winner["training_json"],
        "values": [{"epoch": s + 1, "step": s, "value": v} for s, v in values.items()],
        "backbone": training["backbone"],
        "feature_size": training["feature_size"],
        "head_norm": training["settings"].get("head_norm", "none"),  # absent from a training.json before the option
        "classes": training["classes"],
        "image_min_side": training["settings"]["image_min_side"],
        "image_max_side": training["settings"]["image_max_side"],
        "training_run": training.get("fingerprint"),  # absent from a training.json older than this field
        "variants": [{"variant": run["variant"], "training_json": run["training_json"],
                      "backbone": run["training"]["backbone"], "feature_size": run["training"]["feature_size"],
                      "image_min_side": run["training"]["settings"]["image_min_side"],
                      "image_max_side": run["training"]["settings"]["image_max_side"],
                      "epochs_completed": run["training"]["epochs_completed"],
                      "best_epoch": run["step"] + 1, "value": run["values"][run["step"]]} for run in runs],
    }
    write_atomically(best_json, json.dumps(best, indent=2) + "\n")
    for variant in runs:
        log.info("variant %s: best epoch by %s %d (%.4f)", variant["variant"], metric, variant["step"] + 1,
                 variant["values"][variant["step"]])
    log.info("best: variant %s, epoch %d by %s (%s = %.4f), snapshot %s", winner["variant"], step + 1, metric,
             metric, values[step], snapshot)
    return best


def training_argument(text):
    """argparse type of --training: VARIANT=PATH."""
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected VARIANT=PATH of a training.json, got {text!r}")
    return name, path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("best_json", help="where to write the description of the choice")
    parser.add_argument("best_snapshot", help="where to copy the chosen snapshot (.h5)")
    parser.add_argument("--training", type=training_argument, nargs="+", required=True, metavar="VARIANT=PATH",
                        help="each variant's name and the training.json its training stage wrote")
    parser.add_argument("--metric", choices=sorted(METRICS), required=True,
                        help="mAP: validation mAP, maximised; loss: training loss, minimised")
    args = parser.parse_args(argv)
    trainings = dict(args.training)
    if len(trainings) != len(args.training):
        parser.error("a variant is named twice in --training")
    select_best_snapshot(trainings, args.metric, args.best_json, args.best_snapshot)


if __name__ == "__main__":
    run(main)
