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
- resume: the snapshot folder holds ``progress.json``; when a run stopped
  before its last epoch (killed, or finished with fewer epochs than now
  asked for) and the fingerprint of its inputs and settings matches,
  training continues from the last snapshot at the next epoch, optimizer
  state included; otherwise it starts clean;
- clear errors for an empty split, a validation split without boxes,
  classes that differ from the dataset's, an unreadable weights file, a loss
  that became NaN, and too little disk for the next snapshot. None of these
  touches the snapshots already written.

Snapshots and TensorBoard logs are not Snakemake outputs on purpose: Snakemake
deletes the outputs of a failed job, and a resumed run needs them.
"""
import argparse
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detflow.cli import InputError, parse_bool, run
from detflow import retinanet_compat as compat
from detflow.selection import METRICS, ranked_steps

import h5py  # noqa: E402  (the compat module must come before TensorFlow)
from tensorflow import keras  # noqa: E402
from keras_retinanet import losses, models  # noqa: E402
from keras_retinanet.callbacks import RedirectModel  # noqa: E402
from keras_retinanet.callbacks.eval import Evaluate  # noqa: E402
from keras_retinanet.models.retinanet import retinanet_bbox  # noqa: E402
from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator  # noqa: E402
from keras_retinanet.utils.anchors import make_shapes_callback  # noqa: E402
from keras_retinanet.utils.eval import evaluate  # noqa: E402
from keras_retinanet.utils.image import random_visual_effect_generator  # noqa: E402
from keras_retinanet.utils.model import freeze  # noqa: E402
from keras_retinanet.utils.transform import random_transform_generator  # noqa: E402

log = logging.getLogger(__name__)

SNAPSHOT_PATTERN = "{backbone}_pascal_{{epoch:02d}}.h5"  # the tutorial's names; epochs count from 1
PROGRESS_FILE = "progress.json"
TENSORBOARD_RUN = "train"  # where Keras's TensorBoard callback writes the epoch scalars
LOSSES = ("loss", "regression_loss", "classification_loss")
OPTIMIZER_CLIPNORM = 0.001  # keras-retinanet's default
# Settings that do not change what an epoch computes: a run may resume with other values.
NOT_FINGERPRINTED = ("epochs", "patience", "keep_best", "min_free_mb")


@dataclass
class Settings:
    """The training options of config.yaml's ``train`` section (see there).
    Defaults are those of keras-retinanet's train.py, where it has the option."""

    backbone: str = "resnet50"
    weights: str = "none"
    feature_size: int = compat.LIBRARY_FEATURE_SIZE
    epochs: int = 50
    steps: int = 10000
    batch_size: int = 1
    learning_rate: float = 1e-5
    image_min_side: int = 800
    image_max_side: int = 1333
    augment: bool = False
    freeze_backbone: bool = False
    patience: int = 0
    keep_best: int = 2
    seed: int = 1
    min_free_mb: int = 500


# ---------------------------------------------------------------- the data


def read_classes(classes_json, expected=None):
    """The dataset's {name: label} mapping; with ``expected`` (config's list) it must be the same, in order."""
    try:
        classes = json.loads(Path(classes_json).read_text())
    except (OSError, ValueError) as error:
        raise InputError(classes_json, f"cannot be read as JSON: {error}")
    if not isinstance(classes, dict) or sorted(classes.values()) != list(range(len(classes))) or not classes:
        raise InputError(classes_json, 'expected {"class": label, ...} with labels 0, 1, ... in order')
    names = sorted(classes, key=classes.get)
    if expected is not None and names != list(expected):
        raise InputError(
            classes_json,
            f"the dataset's classes {names} differ from the configured classes {list(expected)} "
            "(names and order must match: rerun the dataset stage, or fix `classes` in config.yaml)",
        )
    return {name: classes[name] for name in names}


def voc_generator(voc_dir, split, classes, settings, preprocess_image, **options):
    """keras-retinanet's PascalVocGenerator over ImageSets/Main/<split>.txt, with errors naming the file."""
    split_file = Path(voc_dir) / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise InputError(split_file, "is missing: the splits stage writes it")
    if not split_file.read_text().split():
        raise InputError(split_file, f"lists no images: the {split} split is empty")
    try:
        return PascalVocGenerator(
            str(voc_dir), split, classes=classes, batch_size=settings.batch_size,
            image_min_side=settings.image_min_side, image_max_side=settings.image_max_side,
            preprocess_image=preprocess_image, **options,
        )
    except OSError as error:  # an image of the split that cannot be opened
        raise InputError(getattr(error, "filename", None) or split_file, f"cannot be read: {error}")


def count_boxes(generator, split_file):
    """Boxes per class of a split, read with the generator's own VOC reader (as training will)."""
    counts = {generator.label_to_name(label): 0 for label in sorted(generator.labels)}
    for index, image_id in enumerate(generator.image_names):
        try:
            annotations = generator.load_annotations(index)
        except ValueError as error:
            raise InputError(Path(generator.data_dir) / "Annotations" / f"{image_id}.xml", str(error))
        for label in annotations["labels"]:
            counts[generator.label_to_name(int(label))] += 1
    return counts


def check_dataset(voc_dir, train_generator, validation_generator):
    """Boxes per class per split; an error when training or validation has no box at all."""
    boxes = {}
    for split, generator in (("train", train_generator), ("val", validation_generator)):
        split_file = Path(voc_dir) / "ImageSets" / "Main" / f"{split}.txt"
        boxes[split] = count_boxes(generator, split_file)
        if not any(boxes[split].values()):
            consequence = (
                "validation mAP cannot be computed (keras-retinanet's Evaluate divides by the number of "
                "classes with boxes)" if split == "val" else "there is nothing to learn"
            )
            raise InputError(split_file, f"its {generator.size()} images hold no boxes: {consequence}")
        for name, count in boxes[split].items():
            if count == 0:
                log.warning("%s: no box of class %r; its AP is left out of mAP", split_file, name)
        log.info("%s: %d images, boxes per class %s", split, generator.size(), boxes[split])
    return boxes


def fingerprint(voc_dir, classes, settings, generators):
    """A hash of everything an epoch's result depends on: the listed images and
    annotations, the classes, the settings (but NOT_FINGERPRINTED) and this code."""
    digest = hashlib.sha256()
    relevant = {key: value for key, value in asdict(settings).items() if key not in NOT_FINGERPRINTED}
    digest.update(json.dumps({"classes": classes, "settings": relevant}, sort_keys=True).encode())
    if settings.weights not in ("none", "imagenet"):
        digest.update(Path(settings.weights).read_bytes())
    for generator in generators:
        for index, image_id in enumerate(generator.image_names):
            digest.update(image_id.encode())
            digest.update(Path(generator.image_path(index)).read_bytes())
            digest.update((Path(voc_dir) / "Annotations" / f"{image_id}.xml").read_bytes())
    for module in (__file__, compat.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the model


def check_weights_file(path, model):
    """Refuse a weights file that cannot be read or shares no layer with ``model``."""
    try:
        with h5py.File(path, "r") as weights:
            group = weights["model_weights"] if "model_weights" in weights else weights
            names = {name.decode() if isinstance(name, bytes) else name for name in group.attrs.get("layer_names", [])}
    except OSError as error:
        raise InputError(path, f"is not a readable Keras .h5 weights file ({error})")
    matching = names & {layer.name for layer in model.layers if layer.weights}
    if not matching:
        raise InputError(path, f"shares no layer with a {model.name} on this backbone: wrong file or backbone?")
    return len(matching)


def new_model(settings, num_classes):
    """A fresh training model with its starting weights, compiled as keras-retinanet's train.py does."""
    modifier = freeze if settings.freeze_backbone else None
    model = compat.build_retinanet(settings.backbone, num_classes, settings.feature_size, modifier=modifier)
    weights = settings.weights
    if weights == "imagenet":
        try:
            weights = compat.backbone(settings.backbone).download_imagenet()
        except Exception as error:  # no network, server gone, checksum mismatch ...
            raise InputError(
                "config: train.weights",
                f"ImageNet weights for {settings.backbone} could not be downloaded ({error}); "
                "use `none` or the path of a weights file",
            )
    if weights != "none":
        matching = check_weights_file(weights, model)
        # As keras-retinanet: by layer name, skipping layers whose shapes differ (e.g. the class head).
        model.load_weights(weights, by_name=True, skip_mismatch=True)
        log.info("starting weights: %s (%d layers with matching names)", weights, matching)
    else:
        log.info("starting weights: none (training from scratch)")
    model.compile(
        loss={"regression": losses.smooth_l1(), "classification": losses.focal()},
        optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate, clipnorm=OPTIMIZER_CLIPNORM),
    )
    return model


def training_generators(voc_dir, classes, settings, initial_epoch):
    """Training (shuffled, augmented when asked) and validation generators."""
    preprocess_image = compat.backbone(settings.backbone).preprocess_image
    augmentation = {}
    if settings.augment:
        # keras-retinanet train.py's --random-transform ranges.
        augmentation = {
            "transform_generator": random_transform_generator(
                prng=np.random.RandomState(settings.seed + initial_epoch),
                min_rotation=-0.1, max_rotation=0.1,
                min_translation=(-0.1, -0.1), max_translation=(0.1, 0.1),
                min_shear=-0.1, max_shear=0.1,
                min_scaling=(0.9, 0.9), max_scaling=(1.1, 1.1),
                flip_x_chance=0.5, flip_y_chance=0.5,
            ),
            "visual_effect_generator": random_visual_effect_generator(
                contrast_range=(0.9, 1.1), brightness_range=(-0.1, 0.1),
                hue_range=(-0.05, 0.05), saturation_range=(0.95, 1.05),
            ),
        }
    train_generator = voc_generator(voc_dir, "train", classes, settings, preprocess_image, **augmentation)
    validation_generator = voc_generator(voc_dir, "val", classes, settings, preprocess_image, shuffle_groups=False)
    return train_generator, validation_generator


# ---------------------------------------------------------------- callbacks


class EvaluateWithClassAP(Evaluate):
    """keras-retinanet's Evaluate, also putting each class's AP into the epoch's logs
    as ``AP_<class>`` (the TensorBoard callback after it then records them beside ``mAP``).
    mAP is Evaluate's: the plain mean over the classes that have validation boxes."""

    def on_epoch_end(self, epoch, logs=None):
        average_precisions, _ = evaluate(
            self.generator, self.model, iou_threshold=self.iou_threshold,
            score_threshold=self.score_threshold, max_detections=self.max_detections,
        )
        present = {}
        for label, (average_precision, num_annotations) in average_precisions.items():
            if num_annotations > 0:
                present[self.generator.label_to_name(label)] = float(average_precision)
        logs.update({f"AP_{name}": value for name, value in present.items()})
        logs["mAP"] = sum(present.values()) / len(present)
        log.info("epoch %d: validation mAP %.4f, AP %s", epoch + 1, logs["mAP"],
                 ", ".join(f"{name} {value:.4f}" for name, value in present.items()))


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


class EpochSnapshots(keras.callbacks.Callback):
    """After each epoch: snapshot, record its metrics, prune old snapshots, stop early when asked."""

    def __init__(self, progress, settings, class_names, metrics_csv):
        super().__init__()
        self.progress = progress
        self.settings = settings
        self.class_names = class_names
        self.metrics_csv = metrics_csv
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "step": epoch, "seconds": round(time.time() - self.started, 3)}
        record.update({key: float(value) for key, value in logs.items() if key in LOSSES or key == "mAP"
                       or key.startswith("AP_")})
        snapshot = self.progress.snapshot_path(epoch + 1)
        save_snapshot(self.model, snapshot, self.settings.min_free_mb)
        record["snapshot"] = snapshot.name
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


def best_epoch(records):
    """The epoch (from 1) with the best validation mAP so far."""
    return ranked_steps({record["step"]: record["mAP"] for record in records}, "mAP")[0] + 1


def save_snapshot(model, path, min_free_mb):
    """Write ``path`` atomically (no half-written snapshot after a kill or a full disk)."""
    check_disk_space(path.parent, snapshot_size_estimate(model, path.parent.glob("*.h5")), min_free_mb)
    partial = path.with_name(path.name + ".partial")
    try:
        model.save(partial, save_format="h5")
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InputError(path.parent, f"the snapshot {path.name} could not be written ({error}); "
                              "earlier snapshots are kept")
    os.replace(partial, path)
    log.info("snapshot %s (%.1f MB)", path, path.stat().st_size / 2**20)


def snapshot_size_estimate(model, earlier_snapshots=()):
    """Bytes of the next snapshot: the size of an earlier one, else weights plus Adam's two moments."""
    sizes = [path.stat().st_size for path in earlier_snapshots if path.is_file()]
    return max(sizes) if sizes else 3 * 4 * model.count_params()


def check_disk_space(folder, needed_bytes, min_free_mb):
    free = shutil.disk_usage(folder).free
    if free - needed_bytes < min_free_mb * 2**20:
        raise InputError(
            folder,
            f"too little disk space for the next snapshot: {free / 2**20:.0f} MB free, a snapshot takes about "
            f"{needed_bytes / 2**20:.0f} MB and train.min_free_mb keeps {min_free_mb} MB free; "
            "free some space (earlier snapshots are kept) and rerun to resume",
        )


# ---------------------------------------------------------------- progress and resume


class Progress:
    """What a run has done so far, kept beside its snapshots in ``progress.json``."""

    def __init__(self, snapshot_dir, backbone, fingerprint_, records=None, stopped=None, resumes=None):
        self.snapshot_dir = Path(snapshot_dir)
        self.backbone = backbone
        self.fingerprint = fingerprint_
        self.records = records or []
        self.stopped = stopped
        self.resumes = resumes or []

    @property
    def pattern(self):
        return SNAPSHOT_PATTERN.format(backbone=self.backbone)

    def snapshot_path(self, epoch):
        return self.snapshot_dir / self.pattern.format(epoch=epoch)

    @classmethod
    def load(cls, snapshot_dir):
        path = Path(snapshot_dir) / PROGRESS_FILE
        try:
            state = json.loads(path.read_text())
            return cls(snapshot_dir, state["backbone"], state["fingerprint"], state["records"],
                       state["stopped"], state["resumes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self):
        state = {"backbone": self.backbone, "fingerprint": self.fingerprint, "stopped": self.stopped,
                 "resumes": self.resumes, "records": self.records}
        write_atomically(self.snapshot_dir / PROGRESS_FILE, json.dumps(state, indent=1) + "\n")

    def kept_epochs(self, keep_best):
        """The last epoch, and the best ``keep_best`` by each selection metric."""
        kept = {self.records[-1]["epoch"]}
        for metric in METRICS:
            values = {record["step"]: record[metric] for record in self.records if metric in record}
            kept.update(step + 1 for step in ranked_steps(values, metric)[:keep_best])
        return kept

    def prune(self, keep_best):
        """Mark the snapshots no longer kept as deleted; return their paths (deleted after save())."""
        kept = self.kept_epochs(keep_best)
        pruned = []
        for record in self.records:
            if record["snapshot"] and record["epoch"] not in kept:
                pruned.append(self.snapshot_dir / record["snapshot"])
                record["snapshot"] = None
        return pruned

    def kept_snapshots(self):
        return {record["epoch"]: record["snapshot"] for record in self.records if record["snapshot"]}

    def remove_strays(self):
        """Delete snapshot files this progress does not list (written just before a kill)."""
        listed = set(self.kept_snapshots().values())
        for path in self.snapshot_dir.iterdir():
            if path.is_file() and path.name != PROGRESS_FILE and path.name not in listed:
                log.info("removing %s, written after the last recorded epoch", path)
                path.unlink()


def resumable_run(snapshot_dir, fingerprint_, epochs):
    """The earlier run's progress when it can be continued, else None; and why not."""
    previous = Progress.load(snapshot_dir)
    if previous is None:
        return None, "no earlier run"
    if previous.fingerprint != fingerprint_:
        return None, "the dataset, classes, settings or code changed since the earlier run"
    if previous.stopped == "early_stopping":
        return None, "the earlier run stopped early (train.patience)"
    if not previous.records:
        return None, "the earlier run stopped before finishing an epoch"
    if len(previous.records) >= epochs:
        return None, f"the earlier run already trained {len(previous.records)} epochs"
    if not previous.snapshot_path(previous.records[-1]["epoch"]).is_file():
        return None, "the earlier run's last snapshot is missing"
    return previous, None


def clear_folders(*folders):
    """Empty the working folders of an earlier run (ours alone: results/training/...)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True)


def write_atomically(path, text):
    partial = Path(f"{path}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_metrics_csv(path, records, class_names):
    """One row per epoch; ``snapshot`` is empty once an epoch's snapshot was pruned."""
    columns = ["epoch", "step", *LOSSES, "mAP", *(f"AP_{name}" for name in class_names), "seconds", "snapshot"]
    partial = Path(f"{path}.partial")
    with open(partial, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns, restval="", extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "snapshot": record["snapshot"] or ""})
    os.replace(partial, path)


# ---------------------------------------------------------------- the stage


def start_or_resume(voc_dir, class_map, settings, snapshot_dir, tensorboard_dir, fingerprint_, generators):
    """The model to train and its progress: the earlier run's, continued from its last snapshot,
    or a new model after clearing the earlier run's folders. Also what was resumed, and the generators."""
    progress, fresh_reason = resumable_run(snapshot_dir, fingerprint_, settings.epochs)
    if progress is not None:
        initial_epoch = len(progress.records)
        snapshot = progress.snapshot_path(initial_epoch)
        try:
            model = models.load_model(str(snapshot), backbone_name=settings.backbone)
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


def train(voc_dir, metrics_csv, training_json, snapshot_dir, tensorboard_dir, settings, classes=None, device=None):
    """Train (or resume training) and write the metrics CSV and training.json; return training.json's content."""
    voc_dir, snapshot_dir, tensorboard_dir = Path(voc_dir), Path(snapshot_dir), Path(tensorboard_dir)
    if settings.image_min_side > settings.image_max_side:
        raise InputError("config: train.image_min_side", "must not exceed train.image_max_side")
    class_map = read_classes(voc_dir / "classes.json", classes)
    class_names = list(class_map)
    if settings.weights not in ("none", "imagenet") and not Path(settings.weights).is_file():
        raise InputError(settings.weights, "train.weights names no file (use none, imagenet or a .h5 path)")
    # keras-retinanet's generator shuffles its batches with Python's random as it is built.
    keras.utils.set_random_seed(settings.seed)
    train_generator, validation_generator = training_generators(voc_dir, class_map, settings, 0)
    boxes = check_dataset(voc_dir, train_generator, validation_generator)
    fingerprint_ = fingerprint(voc_dir, class_map, settings, (train_generator, validation_generator))
    for folder in (snapshot_dir, tensorboard_dir, Path(metrics_csv).parent, Path(training_json).parent):
        folder.mkdir(parents=True, exist_ok=True)

    model, progress, resumed, (train_generator, validation_generator) = start_or_resume(
        voc_dir, class_map, settings, snapshot_dir, tensorboard_dir, fingerprint_,
        (train_generator, validation_generator),
    )
    initial_epoch = resumed["epoch"] if resumed else 0
    log.info("model: %s RetinaNet, FPN and heads %d wide, %d parameters, %d classes %s",
             settings.backbone, compat.feature_size_of(model), model.count_params(), len(class_map), class_names)

    if "resnet" not in settings.backbone:
        # Pyramid shapes from the model itself: guessing them only works for ResNet.
        train_generator.compute_shapes = make_shapes_callback(model)
        validation_generator.compute_shapes = train_generator.compute_shapes
    prediction_model = retinanet_bbox(model=model)
    progress.save()
    callbacks = [
        StopOnNonFiniteLoss(snapshot_dir, settings.learning_rate),
        # Before the TensorBoard callback, so that it logs the mAP and APs this one adds.
        RedirectModel(EvaluateWithClassAP(validation_generator, verbose=0), prediction_model),
        FlushedTensorBoard(log_dir=str(tensorboard_dir)),
        EpochSnapshots(progress, settings, class_names, metrics_csv),
    ]
    started = time.time()
    # An InputError raised by a callback (NaN loss, disk full) ends fit() and the stage.
    model.fit(
        compat.EpochOfSteps(train_generator, settings.steps),
        steps_per_epoch=settings.steps,
        epochs=settings.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    seconds = time.time() - started
    epochs_run = len(progress.records) - initial_epoch
    progress.stopped = progress.stopped or "completed"
    progress.save()
    write_metrics_csv(metrics_csv, progress.records, class_names)
    summary = {
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
        "optimizer_iterations": int(model.optimizer.iterations.numpy()),
        "snapshot_dir": str(snapshot_dir),
        "snapshot_pattern": progress.pattern,
        "snapshots": progress.kept_snapshots(),
        "tensorboard_dir": str(tensorboard_dir),
        "tensorboard_run": TENSORBOARD_RUN,
        "dataset": {
            split: {"images": generator.size(), "boxes": boxes[split]}
            for split, generator in (("train", train_generator), ("val", validation_generator))
        },
        "train_seconds": round(seconds, 2),
        "images_per_second": round(epochs_run * settings.steps * settings.batch_size / seconds, 3),
        "fingerprint": fingerprint_,
    }
    write_atomically(training_json, json.dumps(summary, indent=2) + "\n")
    log.info("trained %d epoch(s) in %.0f s (%.2f images/s); %s",
             epochs_run, seconds, summary["images_per_second"], progress.stopped)
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
    defaults = Settings()
    parser.add_argument("--backbone", default=defaults.backbone)
    parser.add_argument("--weights", default=defaults.weights, help="imagenet, none, or a .h5 file")
    parser.add_argument("--feature-size", type=int, default=defaults.feature_size, help="FPN and head width")
    for name in ("epochs", "steps", "batch_size", "image_min_side", "image_max_side", "patience", "keep_best",
                 "seed", "min_free_mb"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--augment", type=parse_bool, default=defaults.augment)
    parser.add_argument("--freeze-backbone", type=parse_bool, default=defaults.freeze_backbone)
    args = parser.parse_args(argv)
    for name in ("epochs", "steps", "batch_size", "feature_size", "keep_best"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None):
    sys.stdout.reconfigure(line_buffering=True)  # Keras's epoch lines reach the job log as they happen
    args = parse_args(argv)
    settings = Settings(**{name: getattr(args, name) for name in Settings.__dataclass_fields__})
    try:
        compat.backbone(settings.backbone)
    except (ValueError, NotImplementedError, ImportError) as error:
        raise InputError("config: train.backbone", f"{settings.backbone!r} is not a usable backbone ({error})")
    device = compat.setup_device(args.threads)
    train(args.voc_dir, args.metrics, args.summary, args.snapshots, args.tensorboard, settings,
          classes=args.classes, device=device)


if __name__ == "__main__":
    run(main)
