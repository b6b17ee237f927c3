"""Benchmark of the training input pipeline: how much of a training step goes
into producing its batch, and how much of that the model waits for.

The training stage feeds keras-retinanet's Pascal VOC generator (reading,
augmenting, resizing the images and computing the anchor targets) to
``fit`` as a Sequence; tf.keras runs it through ``tf.data`` with a prefetch,
one producer thread taking the batches in order (so the augmentation's random
draws, and hence training, stay the same from run to run), overlapping the
next batch with the current step. Measured on the demo's data with config.yaml's
training settings, alternating, medians of ``--repeats``:

- ``live``: ``fit`` over the generator, as training runs;
- ``ready``: ``fit`` over the same batches made beforehand (no production);
- the CPU-seconds of producing the batches alone.

The model waits for its input for (live - ready) wall seconds; production's
share of the step's CPU is its CPU-seconds over live's.

    .venv/bin/python bench/input_pipeline.py [--steps 20] [--repeats 3]
"""
import argparse
import os
import statistics
import time

import tf_keras

from detflow.lib.data.voc_tree import VocTree, read_classes
from detflow.lib.model.device import setup_device
from detflow.lib.training.data import EpochOfSteps, training_generators
from detflow.lib.training.model import new_model
from detflow.lib.training.settings import Settings
from machine import VOC, project_config, require_demo_dataset


def cpu_seconds():
    times = os.times()
    return times.user + times.system


class Ready(tf_keras.utils.Sequence):
    """Batches made beforehand."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_demo_dataset()
    # Imported here, after detflow: it does `from tensorflow import keras`, which must come after detflow/__init__.py
    # has set TF_USE_LEGACY_KERAS (sorted with the third-party imports above, it would come first).
    from keras_retinanet.utils.anchors import make_shapes_callback

    config = project_config()
    settings = Settings.from_config(config["train"])
    device = setup_device(config["train"]["threads"])
    classes = read_classes(VocTree(VOC).classes_file, config["classes"])
    generator, _ = training_generators(VOC, classes, settings, 0)
    model = new_model(settings, len(classes))
    generator.compute_shapes = make_shapes_callback(model)
    started = cpu_seconds()
    ready = Ready([generator[index % len(generator)] for index in range(args.steps)])
    producing = cpu_seconds() - started
    model.fit(EpochOfSteps(generator, 3), steps_per_epoch=3, epochs=1, verbose=0)  # warm-up: graph tracing
    measured = {"live": [], "ready": []}
    for _ in range(args.repeats):
        for name, sequence in (("live", EpochOfSteps(generator, args.steps)), ("ready", ready)):
            wall, cpu = time.perf_counter(), cpu_seconds()
            model.fit(sequence, steps_per_epoch=args.steps, epochs=1, verbose=0)
            measured[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    median = {name: [statistics.median(values) for values in zip(*runs)] for name, runs in measured.items()}
    print(f"{settings.backbone}/{settings.feature_size}, batch {settings.batch_size}, {settings.image_min_side}-"
          f"{settings.image_max_side} px, {args.steps} steps, medians of {args.repeats}; {device}")
    for name, (wall, cpu) in median.items():
        print(f"{name:6s} {wall / args.steps:.3f} s wall, {cpu / args.steps:.3f} CPU-s per step")
    print(f"producing a batch: {producing / args.steps:.3f} CPU-s, "
          f"{producing / median['live'][1]:.1%} of a live step's CPU")
    print(f"the model waits for its input: {(median['live'][0] - median['ready'][0]) / args.steps:.3f} s per step, "
          f"{1 - median['ready'][0] / median['live'][0]:.1%} of a live step's wall time")


if __name__ == "__main__":
    main()
