"""Callbacks of a training run, around keras-retinanet's: validation mAP with
each class's AP and the COCO mAP@[.5:.95], a stop at a non-finite loss, TensorBoard logs flushed every
epoch, and per-epoch snapshots with the metrics CSV."""
import csv
import logging
import math
import os
import time

from keras_retinanet.callbacks.eval import Evaluate
from keras_retinanet.utils.eval import evaluate
from tensorflow import keras

from detflow.lib.cli import InputError
from detflow.lib.files import replacing
from detflow.lib.metrics.coco import coco_metrics
from detflow.lib.metrics.retinanet_eval import recorded_boxes
from detflow.lib.progress import Progress
from detflow.lib.training.checkpoints import save_snapshot
from detflow.lib.training.selection import ranked_steps

log = logging.getLogger(__name__)

LOSSES = ("loss", "regression_loss", "classification_loss")
VALIDATION = ("mAP", "mAP_50_95")


class EvaluateWithClassAP(Evaluate):
    """keras-retinanet's Evaluate, also putting each class's AP into the epoch's logs
    as ``AP_<class>`` and pycocotools' mAP@[.5:.95] of the same detections as ``mAP_50_95`` (the
    TensorBoard callback after it then records them beside ``mAP``).
    mAP is Evaluate's: the plain mean over the classes that have validation boxes."""

    def on_epoch_end(self, epoch, logs=None):
        with recorded_boxes() as boxes:
            average_precisions, _ = evaluate(
                self.generator, self.model, iou_threshold=self.iou_threshold,
                score_threshold=self.score_threshold, max_detections=self.max_detections,
            )
        names = [self.generator.label_to_name(label) for label in range(self.generator.num_classes())]
        coco = coco_metrics(boxes["annotations"], boxes["detections"], names, self.max_detections)
        present = {}
        for label, (average_precision, num_annotations) in average_precisions.items():
            if num_annotations > 0:
                present[self.generator.label_to_name(label)] = float(average_precision)
        logs.update({f"AP_{name}": value for name, value in present.items()})
        logs["mAP"] = sum(present.values()) / len(present)
        logs["mAP_50_95"] = coco["overall"]["mAP_50_95"]
        log.info("epoch %d: validation mAP %.4f, mAP@[.5:.95] %.4f, AP %s", epoch + 1, logs["mAP"], logs["mAP_50_95"],
                 ", ".join(f"{name} {value:.4f}" for name, value in present.items()))


class AveragedWeights(keras.callbacks.Callback):
    """At each epoch's end, first of the callbacks: the model takes the optimizer's moving average of its
    weights (tf.keras's ``use_ema``), so that validation and the snapshot see it; TrainingWeightsRestored,
    last, puts the training weights back. Nothing happens when the optimizer keeps no average."""

    def __init__(self):
        super().__init__()
        self.training_values = None

    def on_epoch_end(self, epoch, logs=None):
        if self.model.optimizer.use_ema:
            self.training_values = [variable.numpy() for variable in self.model.trainable_variables]
            self.model.optimizer.finalize_variable_values(self.model.trainable_variables)


class TrainingWeightsRestored(keras.callbacks.Callback):
    """The training weights back after the epoch's validation and snapshot (see AveragedWeights)."""

    def __init__(self, averaged):
        super().__init__()
        self.averaged = averaged

    def on_epoch_end(self, epoch, logs=None):
        if self.averaged.training_values is not None:
            for variable, value in zip(self.model.trainable_variables, self.averaged.training_values):
                variable.assign(value)
            self.averaged.training_values = None


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first batch whose loss is NaN or infinite, before its epoch is snapshotted."""

    def __init__(self, snapshot_dir, learning_rate):
        super().__init__()
        self.snapshot_dir = snapshot_dir
        self.learning_rate = learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise InputError(
                self.snapshot_dir,
                f"training diverged: the loss became {loss} in epoch {self.epoch + 1}, batch {batch + 1}; "
                f"lower train.learning_rate (now {self.learning_rate:g}). The snapshots of earlier epochs are kept.",
            )


class FlushedTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, flushed at every epoch end: a killed run keeps every logged epoch."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        for writer in self._writers.values():  # the callback opens its writers lazily and keeps them here
            writer.flush()


class StepProgress(keras.callbacks.Callback):
    """Training steps done of the run's total, their rate and the time left (Keras itself says only a line per
    epoch when its output is not a terminal)."""

    def __init__(self, total):
        super().__init__()
        self.total = total

    def on_train_begin(self, logs=None):
        self.progress = Progress("training", self.total, "steps")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update()

    def on_train_end(self, logs=None):
        self.progress.done()


class EpochSnapshots(keras.callbacks.Callback):
    """After each epoch: snapshot, record its metrics, prune old snapshots, stop early when asked."""

    def __init__(self, progress, settings, class_names, metrics_csv):
        super().__init__()
        self.progress = progress
        self.settings = settings
        self.class_names = class_names
        self.metrics_csv = metrics_csv
        self.started, self.cpu_started = time.time(), _cpu_seconds()

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.cpu_started = time.time(), _cpu_seconds()

    def on_epoch_end(self, epoch, logs=None):
        # CPU time besides wall time: other load on a shared machine barely changes it.
        record = {"epoch": epoch + 1, "step": epoch, "seconds": round(time.time() - self.started, 3),
                  "cpu_seconds": round(_cpu_seconds() - self.cpu_started, 3)}
        record.update({key: float(value) for key, value in logs.items() if key in LOSSES or key in VALIDATION
                       or key.startswith("AP_")})
        snapshot = self.progress.snapshot_path(epoch + 1)
        save_snapshot(self.model, snapshot, self.settings.min_free_mb)
        record["snapshot"] = snapshot.name
        record["optimizer_iterations"] = int(self.model.optimizer.iterations.numpy())  # what an adopting rerun reports
        self.progress.records.append(record)
        pruned = self.progress.prune(self.settings.keep_best)
        if self.settings.patience and epoch + 1 - best_epoch(self.progress.records) >= self.settings.patience:
            self.progress.stopped = "early_stopping"
            self.model.stop_training = True
            log.info("no better validation mAP for %d epochs: stopping early", self.settings.patience)
        self.progress.save()
        for path in pruned:
            path.unlink(missing_ok=True)
            log.info("removed %s: neither the last nor among the best %d by mAP or loss", path.name,
                     self.settings.keep_best)
        write_metrics_csv(self.metrics_csv, self.progress.records, self.class_names)


def _cpu_seconds():
    """CPU time of this process so far, all its threads, user and system."""
    times = os.times()
    return times.user + times.system


def best_epoch(records):
    """The epoch (from 1) with the best validation mAP so far."""
    return ranked_steps({record["step"]: record["mAP"] for record in records}, "mAP")[0] + 1


def write_metrics_csv(path, records, class_names):
    """One row per epoch; ``snapshot`` is empty once an epoch's snapshot was pruned."""
    columns = ["epoch", "step", *LOSSES, *VALIDATION, *(f"AP_{name}" for name in class_names), "seconds", "cpu_seconds",
               "snapshot"]
    with replacing(path) as partial, open(partial, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns, restval="", extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "snapshot": record["snapshot"] or ""})
