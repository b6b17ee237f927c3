"""Benchmark of the training stage against keras-retinanet's own training command.

Both train the same model on the same data, side by side in this run: our
stage (``python -m detflow.train``) on images of the demo's own Pascal VOC
dataset as the workflow writes it (``results/voc``; build it first with
``.venv/bin/snakemake --cores all results/voc/splits.json``):
``--train-images`` and ``--val-images`` of its train and val splits, spread
over each split's list, copied into a VOC tree of their own; and
keras-retinanet's ``retinanet-train csv`` (its ``keras_retinanet.bin.train``
entry point) on the same images and boxes converted to its CSV format (an
image without boxes as its empty row). Same backbone and FPN width (the
library's 256), image sizes, batch size, steps, epochs, augmentation (its
``--random-transform``), learning rate, weights (none), per-epoch evaluation
on the same validation images, per-epoch snapshots and TensorBoard logs. The
library's command needs tf_keras registered as ``keras`` in its process
(``detflow.lib.model.retinanet.use_tf_keras_as_keras``), nothing else.

Measured: images/s = epochs x steps x batch size / wall time of the whole
command (start-up, model building and evaluation included), best of
``--repeats`` runs each, alternating; and the same per CPU-second of the
command, which other load on a shared machine barely moves. Target: ours
>= 1.0x theirs by medians (nothing in our training loop costs more than
keras-retinanet's own command).

    .venv/bin/python bench/train.py [--backbone resnet50] [--epochs 2] [--steps 10] [--batch-size 2] [--repeats 3]
"""
import argparse
import csv
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from detflow.lib.data.pascal_voc import read_annotation
from detflow.lib.data.voc_tree import VocTree, read_classes
from machine import REPO, VOC, require_demo_dataset

TARGET_RATIO = 1.0  # by medians: nothing in our loop may cost more than keras-retinanet's own
LIBRARY_COMMAND = ("import sys; from detflow.lib.model import retinanet; retinanet.use_tf_keras_as_keras(); "
                   "from keras_retinanet.bin.train import main; main(sys.argv[1:])")


def spread(items, count):
    """``count`` of ``items`` (all when they are fewer), evenly spaced over the list."""
    return list(items) if count >= len(items) else [items[index * len(items) // count] for index in range(count)]


def demo_subset(voc, root, counts):
    """A VOC tree at ``root`` of ``counts[split]`` images of each split of the VOC tree ``voc``, spread over the
    split's list (which is sorted by video), with their annotations and the classes; returns {split: count}."""
    source, tree = VocTree(voc), VocTree(root)
    for folder in (tree.images, tree.annotations, tree.lists):
        folder.mkdir(parents=True)
    shutil.copyfile(source.classes_file, tree.classes_file)
    chosen = {split: spread(source.split_image_ids(split), count) for split, count in counts.items()}
    for split, image_ids in chosen.items():
        tree.split_file(split).write_text("".join(f"{image_id}\n" for image_id in image_ids))
        for image_id in image_ids:
            shutil.copyfile(source.image(image_id), tree.image(image_id))
            shutil.copyfile(source.annotation(image_id), tree.annotation(image_id))
    return {split: len(image_ids) for split, image_ids in chosen.items()}


def voc_to_csv(voc, classes, folder):
    """keras-retinanet's CSV format for the train and val splits: path,x1,y1,x2,y2,class (0-based pixels)."""
    folder.mkdir(parents=True)
    tree = VocTree(voc)
    with open(folder / "classes.csv", "w", newline="") as stream:
        csv.writer(stream).writerows(sorted(classes.items(), key=lambda item: item[1]))
    for split in ("train", "val"):
        with open(folder / f"{split}.csv", "w", newline="") as stream:
            writer = csv.writer(stream)
            for image_id in tree.split_image_ids(split):
                annotation = read_annotation(tree.annotation(image_id))
                image = tree.image(image_id)
                if not annotation.objects:  # a negative: the CSV reader's row for an image without boxes
                    writer.writerow([image, "", "", "", "", ""])
                for item in annotation.objects:
                    xmin, ymin, xmax, ymax = item.box
                    # The VOC reader subtracts 1 from every coordinate; the CSV reader takes them as they are.
                    writer.writerow([image, xmin - 1, ymin - 1, xmax - 1, ymax - 1, item.name])


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command, log_path):
    """(wall seconds, CPU seconds) of a command; CPU time barely depends on what else the machine runs."""
    started, cpu_before = time.perf_counter(), cpu_seconds_of_children()
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return time.perf_counter() - started, cpu_seconds_of_children() - cpu_before


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50", help="resnet50: the backbone keras-retinanet tests")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-min-side", type=int, default=128)
    parser.add_argument("--image-max-side", type=int, default=192)
    parser.add_argument("--train-images", type=int, default=48,
                        help="images of the demo's train split to train on (at most the split's)")
    parser.add_argument("--val-images", type=int, default=8,
                        help="images of the demo's val split to evaluate on (at most the split's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if min(args.train_images, args.val_images) < 1:
        parser.error("--train-images and --val-images must be at least 1")
    require_demo_dataset()

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        voc = work / "voc"
        used = demo_subset(VOC, voc, {"train": args.train_images, "val": args.val_images})
        # keras-retinanet's command ends training when an epoch asks for more batches than the data holds.
        assert args.steps * args.batch_size <= used["train"], "steps x batch size must not exceed the train images"
        classes = read_classes(VocTree(voc).classes_file)
        voc_to_csv(voc, classes, work / "csv")
        print(f"data: {used['train']} train and {used['val']} val images of the demo's dataset ({VOC})", flush=True)
        common = ["--backbone", args.backbone, "--epochs", str(args.epochs), "--steps", str(args.steps),
                  "--batch-size", str(args.batch_size), "--image-min-side", str(args.image_min_side),
                  "--image-max-side", str(args.image_max_side)]
        images = args.epochs * args.steps * args.batch_size
        times = {"ours": [], "keras-retinanet": []}
        for repeat in range(args.repeats):
            run = work / f"run{repeat}"
            ours = [sys.executable, "-m", "detflow.train", str(voc), "--metrics", str(run / "ours" / "metrics.csv"),
                    "--summary", str(run / "ours" / "training.json"), "--snapshots", str(run / "ours" / "snapshots"),
                    "--tensorboard", str(run / "ours" / "tensorboard"), "--classes", ",".join(classes),
                    "--feature-size", "256", "--weights", "none", "--learning-rate", "0.001", "--augment", "true",
                    "--rotate-shear", "true", "--flip-vertical", "true",  # as keras-retinanet's --random-transform
                    # The recipe's defaults (config.yaml): their cost per step is part of ours.
                    "--lr-schedule", "cosine", "--warmup-steps", "100", "--ema", "true", "--ema-momentum", "0.98",
                    "--box-loss", "smooth_l1", "--head-norm", "none",
                    "--freeze-backbone", "false", "--patience", "0", "--keep-best", "2", "--seed", "1",
                    "--min-free-mb", "500", *common]
            theirs = [sys.executable, "-c", LIBRARY_COMMAND, *common, "--no-weights", "--lr", "0.001",
                      "--random-transform", "--snapshot-path", str(run / "theirs" / "snapshots"),
                      "--tensorboard-dir", str(run / "theirs" / "tensorboard"),
                      "csv", str(work / "csv" / "train.csv"), str(work / "csv" / "classes.csv"),
                      "--val-annotations", str(work / "csv" / "val.csv")]
            (run / "theirs").mkdir(parents=True)
            times["ours"].append(timed(ours, work / f"ours{repeat}.log"))
            times["keras-retinanet"].append(timed(theirs, work / f"theirs{repeat}.log"))
            print("run {}: ours {:.1f} s ({:.1f} s CPU), keras-retinanet {:.1f} s ({:.1f} s CPU)".format(
                repeat + 1, *times["ours"][-1], *times["keras-retinanet"][-1]), flush=True)
        summary = json.loads((work / "run0" / "ours" / "training.json").read_text())

    rate = {name: images / min(wall for wall, _ in runs) for name, runs in times.items()}
    median_rate = {name: images / statistics.median(wall for wall, _ in runs) for name, runs in times.items()}
    cpu_rate = {name: images / min(cpu for _, cpu in runs) for name, runs in times.items()}
    ratio = rate["ours"] / rate["keras-retinanet"]
    print(f"{args.backbone}, FPN/heads 256, {args.image_min_side}-{args.image_max_side} px, batch {args.batch_size}, "
          f"{args.epochs} epochs x {args.steps} steps = {images} images; device: {summary['device']}")
    for name, label in (("ours", "ours (python -m detflow.train)"),
                        ("keras-retinanet", "keras-retinanet (retinanet-train csv)")):
        print(f"{label:38s} {rate[name]:.3f} images/s wall (median {median_rate[name]:.3f}), "
              f"{cpu_rate[name]:.3f} images per CPU-second (best of {args.repeats})")
    median_ratio = median_rate["ours"] / median_rate["keras-retinanet"]
    print(f"ratio of medians (wall): {median_ratio:.3f}x (target >= {TARGET_RATIO}x): "
          f"{'met' if median_ratio >= TARGET_RATIO else 'NOT met'}")
    print(f"ratio of the best runs (wall): {ratio:.3f}x")
    print(f"ratio (CPU time, robust to other load on the machine): {cpu_rate['ours'] / cpu_rate['keras-retinanet']:.3f}x")

if __name__ == "__main__":
    main()
