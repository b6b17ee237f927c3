"""Benchmark of the training stage against keras-retinanet's own training command.

Both train the same model on the same data, side by side in this run: our
stage (``python -m detflow.train``) on a synthetic Pascal VOC set, and
keras-retinanet's ``retinanet-train csv`` (its ``keras_retinanet.bin.train``
entry point) on the same images and boxes converted to its CSV format. Same
backbone and FPN width (the library's 256), image sizes, batch size, steps,
epochs, augmentation (its ``--random-transform``), learning rate, weights
(none), per-epoch evaluation on the same validation images, per-epoch
snapshots and TensorBoard logs. The library's command needs the compatibility
module in its process (tf_keras as ``keras``), nothing else.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))
from detflow.lib.pascal_voc import read_annotation  # noqa: E402
from helpers.voc import CLASSES, make_voc  # noqa: E402

TARGET_RATIO = 1.0  # by medians: nothing in our loop may cost more than keras-retinanet's own
LIBRARY_COMMAND = "import detflow.lib.retinanet_compat, sys; from keras_retinanet.bin.train import main; main(sys.argv[1:])"


def voc_to_csv(voc, folder):
    """keras-retinanet's CSV format for the train and val splits: path,x1,y1,x2,y2,class (0-based pixels)."""
    folder.mkdir(parents=True)
    with open(folder / "classes.csv", "w", newline="") as stream:
        csv.writer(stream).writerows(sorted(CLASSES.items(), key=lambda item: item[1]))
    for split in ("train", "val"):
        with open(folder / f"{split}.csv", "w", newline="") as stream:
            writer = csv.writer(stream)
            for image_id in (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split():
                annotation = read_annotation(voc / "Annotations" / f"{image_id}.xml")
                image = voc / "JPEGImages" / f"{image_id}.jpg"
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
    parser.add_argument("--train-images", type=int, default=48)
    parser.add_argument("--val-images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # keras-retinanet's command ends training when an epoch asks for more batches than the data holds.
    assert args.steps * args.batch_size <= args.train_images, "steps x batch size must not exceed the train images"

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        voc = make_voc(work / "voc", train=args.train_images, val=args.val_images)
        voc_to_csv(voc, work / "csv")
        common = ["--backbone", args.backbone, "--epochs", str(args.epochs), "--steps", str(args.steps),
                  "--batch-size", str(args.batch_size), "--image-min-side", str(args.image_min_side),
                  "--image-max-side", str(args.image_max_side)]
        images = args.epochs * args.steps * args.batch_size
        times = {"ours": [], "keras-retinanet": []}
        for repeat in range(args.repeats):
            run = work / f"run{repeat}"
            ours = [sys.executable, "-m", "detflow.train", str(voc), "--metrics", str(run / "ours" / "metrics.csv"),
                    "--summary", str(run / "ours" / "training.json"), "--snapshots", str(run / "ours" / "snapshots"),
                    "--tensorboard", str(run / "ours" / "tensorboard"), "--classes", ",".join(CLASSES),
                    "--feature-size", "256", "--weights", "none", "--learning-rate", "0.001", "--augment", "true",
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
