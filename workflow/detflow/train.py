"""Training stage: a keras-retinanet detector trained on the Pascal VOC dataset.

Everything is keras-retinanet's own: backbones, ``PascalVocGenerator`` (classes
given, never edited into the library), losses, random transform and visual
effect generators, the ``Evaluate`` callback (validation mAP after each
epoch). Around it the stage adds what a long run needs:

- TensorBoard logs (Keras's callback, flushed every epoch) with the epoch's
  loss, regression and classification loss, validation mAP and per-class AP;
- a snapshot per epoch (the model with its optimizer state), written
  atomically after a disk-space check, keeping only the last one and the best
  ``keep_best`` by each selection metric (validation mAP and training loss,
  ranked as the best-snapshot stage ranks them, so its choice always exists);
- a per-epoch metrics CSV, rewritten after every epoch;
- two recipe options through keras-retinanet's own arguments: ``head_norm``
  (group-normalised heads as ``submodels``, lib/model/heads.py) and
  ``box_loss`` (a GIoU box loss through ``compile``, lib/model/losses.py);
- the learning-rate schedule (constant, or a linear warm-up then a cosine
  decay over the run's steps) and the exponential moving average of the
  weights (``lr_schedule``, ``warmup_steps``, ``ema``, ``ema_momentum``) are
  the tf.keras optimizer's own; with the average on, validation, snapshots and
  hence the exported model use the averaged weights, and training goes on from
  its own weights between epochs;
- resume: the snapshot folder holds ``progress.json``; when a run stopped
  before its last epoch (killed, or finished with fewer epochs than now
  asked for) and the fingerprint of its inputs and settings matches,
  training continues from the last snapshot at the next epoch, optimizer
  state included (its schedule too: a cosine decay keeps the length it was
  started with; with ``ema`` training continues from the averaged weights
  the snapshot holds); otherwise it starts clean;
- adoption: when the earlier run in the snapshot folder is complete (the
  same fingerprint, every requested epoch trained, its snapshots there), as
  after Snakemake was killed while its training went on to the end, the
  metrics CSV and training.json are written again from its record and
  nothing is trained;
- a lock on the snapshot folder (``training.lock``, held with flock, the
  holder's PID in it): a second training on the same folders stops at once
  naming the PID that holds it;
- clear errors for an empty split, a validation split without boxes,
  classes that differ from the dataset's, an unreadable weights file, an
  image that cannot be decoded (named), a loss that became NaN, and too
  little disk for the next snapshot. None of these
  touches the snapshots already written.

Snapshots and TensorBoard logs are not Snakemake outputs on purpose: Snakemake
deletes the outputs of a failed job, and a resumed run needs them.
"""
import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from keras_retinanet.callbacks import RedirectModel
from keras_retinanet.models.retinanet import retinanet_bbox
from keras_retinanet.utils.anchors import make_shapes_callback
from tensorflow import keras

from detflow.lib.cli import InputError, add_settings_options, run, settings_from_options
from detflow.lib.data.voc_tree import VocTree, read_classes
from detflow.lib.files import write_atomically
from detflow.lib.model import retinanet
from detflow.lib.model.device import setup_device
from detflow.lib.training.callbacks import (
    AveragedWeights, EpochSnapshots, EvaluateWithClassAP, FlushedTensorBoard, StepProgress, StopOnNonFiniteLoss,
    TrainingWeightsRestored, write_metrics_csv,
)
from detflow.lib.training.checkpoints import (
    PROGRESS_FILE, Progress, check_disk_space, clear_folders, finished_run, resumable_run, snapshot_size_estimate,
    working_folder_lock,
)
from detflow.lib.training.data import (
    EpochOfSteps, check_dataset, fingerprint, raise_reading_failure, training_generators,
)
from detflow.lib.training.model import new_model
from detflow.lib.training.settings import Settings

log = logging.getLogger(__name__)

TENSORBOARD_RUN = "train"  # where Keras's TensorBoard callback writes the epoch scalars



# ---------------------------------------------------------------- the stage


def start_or_resume(voc_dir, class_map, settings, snapshot_dir, tensorboard_dir, fingerprint_, generators):
    """The model to train and its progress: the earlier run's, continued from its last snapshot,
    or a new model after clearing the earlier run's folders. Also what was resumed, and the generators."""
    progress, fresh_reason = resumable_run(snapshot_dir, fingerprint_, settings.epochs)
    if progress is not None:
        initial_epoch = len(progress.records)
        snapshot = progress.snapshot_path(initial_epoch)
        try:
            model = retinanet.load_model(snapshot, settings.backbone)
        except (OSError, ValueError) as error:
            raise InputError(snapshot, f"cannot be loaded to resume training ({error}); "
                             f"delete {snapshot_dir} to start over")
        resumed = {"epoch": initial_epoch, "snapshot": str(snapshot),
                   "optimizer_iterations": int(model.optimizer.iterations.numpy())}
        log.info("resuming after epoch %d from %s (optimizer at iteration %d)",
                 initial_epoch, snapshot, resumed["optimizer_iterations"])
        # Fresh augmentation and shuffling for the epochs still to come.
        keras.utils.set_random_seed(settings.seed + initial_epoch)
        generators = training_generators(voc_dir, class_map, settings, initial_epoch)
    else:
        initial_epoch, resumed = 0, None
        log.info("starting from scratch: %s", fresh_reason)
        # Seeded again: unseeded Keras initialisers draw from Python's random, which building the
        # generators advanced by an amount that depends on the dataset's size.
        keras.utils.set_random_seed(settings.seed)
        model = new_model(settings, len(class_map))
    # Every check passed: only now may an earlier run's snapshots and logs go.
    earlier_snapshots = [snapshot_dir / name for name in progress.kept_snapshots().values()] if progress else []
    check_disk_space(snapshot_dir, snapshot_size_estimate(model, earlier_snapshots), settings.min_free_mb)
    if progress is None:
        clear_folders(snapshot_dir, tensorboard_dir)
        progress = Progress(snapshot_dir, settings.backbone, fingerprint_)
    else:
        progress.remove_strays()
        progress.resumes.append(resumed)
        progress.stopped = None
    return model, progress, resumed, generators


def _class_map(tree, settings, classes):
    """The dataset's classes after the checks that need no model: sizes, classes, weights file."""
    if settings.image_min_side > settings.image_max_side:
        raise InputError("config: train.image_min_side", "must not exceed train.image_max_side")
    if settings.weights == "imagenet":  # the workflow's weights rule fetches the file beforehand
        raise InputError("--weights imagenet", "training never downloads: give the weights file that "
                                               "`python -m detflow.weights` fetches, or none")
    if settings.weights != "none" and not Path(settings.weights).is_file():
        raise InputError(settings.weights, "train.weights names no file (use none or a .h5 path)")
    return read_classes(tree.classes_file, classes)


def _callbacks(model, generators, progress, settings, class_names, metrics_csv, snapshot_dir, tensorboard_dir):
    """keras-retinanet's validation and ours, in the order they must run."""
    train_generator, validation_generator = generators
    if "resnet" not in settings.backbone:
        # Pyramid shapes from the model itself: guessing them only works for ResNet.
        train_generator.compute_shapes = make_shapes_callback(model)
        validation_generator.compute_shapes = train_generator.compute_shapes
    averaged = AveragedWeights()  # validation and snapshot see the moving average (when train.ema is on)
    return [
        StopOnNonFiniteLoss(snapshot_dir, settings.learning_rate),
        averaged,
        # Before the TensorBoard callback, so that it logs the mAP and APs this one adds.
        RedirectModel(EvaluateWithClassAP(validation_generator, verbose=0), retinanet_bbox(model=model)),
        FlushedTensorBoard(log_dir=str(tensorboard_dir)),
        EpochSnapshots(progress, settings, class_names, metrics_csv),
        TrainingWeightsRestored(averaged),
        StepProgress((settings.epochs - len(progress.records)) * settings.steps),
    ]


def epochs_run(progress, resumed):
    """Epochs trained by this run (a resumed run started after the earlier run's epochs)."""
    return len(progress.records) - (resumed["epoch"] if resumed else 0)


def _summary(settings, class_map, device, progress, resumed, optimizer_iterations, generators, boxes, seconds,
             epochs_trained, tensorboard_dir, fingerprint_, adopted=None):
    """training.json's content."""
    return {
        "backbone": settings.backbone,
        "feature_size": settings.feature_size,
        "classes": class_map,
        "settings": asdict(settings),
        "device": device,
        "epochs_requested": settings.epochs,
        "epochs_completed": len(progress.records),
        "stopped": progress.stopped,
        "resumed_from": resumed,
        "resumes": progress.resumes,
        "optimizer_iterations": optimizer_iterations,
        "adopted": adopted,
        "snapshot_dir": str(progress.snapshot_dir),
        "snapshot_pattern": progress.pattern,
        "snapshots": progress.kept_snapshots(),
        "tensorboard_dir": str(tensorboard_dir),
        "tensorboard_run": TENSORBOARD_RUN,
        "dataset": {split: {"images": generator.size(), "boxes": boxes[split]}
                    for split, generator in zip(("train", "val"), generators)},
        "train_seconds": round(seconds, 2),
        "images_per_second": (round(epochs_trained * settings.steps * settings.batch_size / seconds, 3)
                              if seconds else None),
        "fingerprint": fingerprint_,
    }


def adopt(progress, metrics_csv, training_json, settings, class_map, device, generators, boxes, tensorboard_dir,
          fingerprint_):
    """Write the metrics CSV and training.json of a complete earlier run from its record, training nothing."""
    log.info("adopting the finished run in %s: all %d epochs trained with the same data, settings and code; "
             "the metrics CSV and training.json are written again from its %s, nothing is trained",
             progress.snapshot_dir, len(progress.records), PROGRESS_FILE)
    last = progress.records[-1]
    # Each epoch takes exactly `steps` optimizer steps (records older than their iteration count).
    iterations = last.get("optimizer_iterations", len(progress.records) * settings.steps)
    seconds = sum(record.get("seconds", 0) for record in progress.records)
    adopted = {"progress": str(progress.snapshot_dir / PROGRESS_FILE), "epochs": len(progress.records),
               "stopped": progress.stopped}
    progress.stopped = progress.stopped or "completed"  # a run killed after its last epoch's record
    write_metrics_csv(metrics_csv, progress.records, list(class_map))
    summary = _summary(settings, class_map, device, progress, None, iterations, generators, boxes, seconds,
                       len(progress.records), tensorboard_dir, fingerprint_, adopted)
    write_atomically(training_json, json.dumps(summary, indent=2) + "\n")
    return summary


def train(voc_dir, metrics_csv, training_json, snapshot_dir, tensorboard_dir, settings, classes=None, device=None):
    """Train (or resume training, or adopt a finished run) and write the metrics CSV and training.json; return
    training.json's content. Once the data is checked, the snapshot folder is locked for the rest of the run."""
    tree, snapshot_dir, tensorboard_dir = VocTree(voc_dir), Path(snapshot_dir), Path(tensorboard_dir)
    class_map = _class_map(tree, settings, classes)
    # keras-retinanet's generator shuffles its batches with Python's random as it is built.
    keras.utils.set_random_seed(settings.seed)
    generators = training_generators(tree.root, class_map, settings, 0)
    boxes = check_dataset(tree.root, *generators)
    fingerprint_ = fingerprint(tree.root, class_map, settings, generators)
    with working_folder_lock(snapshot_dir):
        return _train(tree, class_map, metrics_csv, training_json, snapshot_dir, tensorboard_dir, settings, device,
                      generators, boxes, fingerprint_)


def _train(tree, class_map, metrics_csv, training_json, snapshot_dir, tensorboard_dir, settings, device, generators,
           boxes, fingerprint_):
    """train() under the lock of the snapshot folder, from the checked data on."""
    for folder in (snapshot_dir, tensorboard_dir, Path(metrics_csv).parent, Path(training_json).parent):
        folder.mkdir(parents=True, exist_ok=True)
    finished = finished_run(snapshot_dir, fingerprint_, settings.epochs)
    if finished is not None:
        return adopt(finished, metrics_csv, training_json, settings, class_map, device, generators, boxes,
                     tensorboard_dir, fingerprint_)
    model, progress, resumed, generators = start_or_resume(
        tree.root, class_map, settings, snapshot_dir, tensorboard_dir, fingerprint_, generators)
    log.info("model: %s RetinaNet, FPN and heads %d wide (heads' normalisation: %s), %d parameters, %d classes %s; "
             "box loss %s", settings.backbone, retinanet.feature_size_of(model), settings.head_norm, model.count_params(),
             len(class_map), list(class_map), settings.box_loss)
    callbacks = _callbacks(model, generators, progress, settings, list(class_map), metrics_csv, snapshot_dir,
                           tensorboard_dir)
    progress.save()
    started = time.time()
    # An InputError raised by a callback (NaN loss, disk full) ends fit() and the stage.
    try:
        model.fit(EpochOfSteps(generators[0], settings.steps), steps_per_epoch=settings.steps,
                  epochs=settings.epochs, initial_epoch=resumed["epoch"] if resumed else 0, callbacks=callbacks,
                  verbose=2)
    except Exception:  # an image that cannot be decoded reaches here wrapped in TensorFlow's error: name it
        raise_reading_failure(generators)
        raise
    seconds = time.time() - started
    progress.stopped = progress.stopped or "completed"
    progress.save()
    write_metrics_csv(metrics_csv, progress.records, list(class_map))
    summary = _summary(settings, class_map, device, progress, resumed, int(model.optimizer.iterations.numpy()),
                       generators, boxes, seconds, epochs_run(progress, resumed), tensorboard_dir, fingerprint_)
    write_atomically(training_json, json.dumps(summary, indent=2) + "\n")
    log.info("trained %d epoch(s) in %.0f s (%.2f images/s); %s", epochs_run(progress, resumed), seconds,
             summary["images_per_second"], progress.stopped)
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("voc_dir", help="the VOC dataset: JPEGImages, Annotations, ImageSets/Main, classes.json")
    parser.add_argument("--metrics", required=True, help="per-epoch metrics CSV to write")
    parser.add_argument("--summary", required=True, help="training.json to write at the end")
    parser.add_argument("--snapshots", required=True, help="snapshot folder (kept across runs for resume)")
    parser.add_argument("--tensorboard", required=True, help="TensorBoard log folder")
    parser.add_argument("--classes", type=lambda text: text.split(","), default=None,
                        help="comma-separated class names the dataset must have, in label order")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    add_settings_options(parser, Settings, "settings (config.yaml's train section; all required)")
    args = parser.parse_args(argv)
    return args, settings_from_options(Settings, args, parser)


def main(argv=None):
    sys.stdout.reconfigure(line_buffering=True)  # Keras's epoch lines reach the job log as they happen
    args, settings = parse_args(argv)
    try:
        retinanet.backbone(settings.backbone)
    except (ValueError, NotImplementedError, ImportError) as error:
        raise InputError("config: train.backbone", f"{settings.backbone!r} is not a usable backbone ({error})")
    device = setup_device(args.threads)
    train(args.voc_dir, args.metrics, args.summary, args.snapshots, args.tensorboard, settings,
          classes=args.classes, device=device)


if __name__ == "__main__":
    run(main)
