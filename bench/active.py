"""Benchmark of choosing the frames to label: today's selection, random frames and the model's choice, in
rounds of "label N more frames, train a fixed budget, evaluate on the test split", on the demo, with the
demo's per-frame truth as the person who labels.

- ``today``: each training video's frames spread over time and appearance (the frames_to_label stage's
  farthest-point sampling); a round's N more frames go to the videos in turn, so a video never has more
  than one frame more than another;
- ``random``: N frames drawn at random from the training videos' kept frames not labelled yet;
- ``new``: the next_frames stage's choice by the previous round's model (uncertainty x novelty in
  appearance and time).

All three start from the same first round (today's selection, trained once from scratch for the demo's whole
budget, so that what a round adds is labels, not training time a model still needed). Each later round
starts from the previous round's best snapshot (``train.weights``: a warm start) and trains a fixed budget.
Validation (choosing the snapshot) and test are the demo's own val and test splits, fixed for all; only
training frames are chosen. A strategy stops once its test mAP@0.5 reaches the target.

With a handful of labels a model's test mAP moves by tenths with its training seed alone, so the whole
experiment runs once per seed (``--seeds``: the training seed of every round and the random strategy's
draw). The seeds' first rounds, then each seed's strategies, run side by side in ``--workers`` processes
(default: one per CPU core, each training on its share of the cores), which end with the bench. On 2 cores
two one-thread trainings are no faster than one two-thread training; the gain is in the evaluation,
conversion and frame scoring between trainings, which use one core. A seed's figures repeat for the same
number of threads per worker.

Printed: per seed and round the labels used, test mAP@0.5 and mAP@[.5:.95], and how much the last model
missed on the frames the round added (the mean over their true boxes of 1 - the best score x IoU of the
model's boxes of that class: 0, every hand found, tight and sure; 1, not found at all); per seed each
strategy's mean test mAP@0.5 over the later rounds (how high its learning curve runs, not only where it crosses the
target); per strategy the labels it first reaches the target with, for each seed and their median; and the
ratio of the medians new / today (target: at most 0.6).

``--bound K`` also trains, per seed, K random batches of the second round, each as a later round is trained,
and prints the best one's test mAP@0.5: how far a choice of that round's frames got when it was picked by
the test split itself, which no strategy can see (an optimistic bound, not a strategy).

Needs the demo's outputs (frames, truth, dataset and splits): ``snakemake --cores all results/voc/splits.json``.

    .venv/bin/python bench/active.py [--seeds 1 2 3] [--first 1] [--per-round 3] [--rounds 5] [--workers 2]
                                     [--only today random new] [--bound K]
"""
import argparse
import ctypes
import csv
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from detflow import best_snapshot, convert, evaluate, next_frames
from detflow.demo_labeller import write_demo_labels
from detflow.frames_to_label import select_frames
from detflow.lib.data.frame_lists import SELECTION_COLUMNS, read_kept_frames
from detflow.lib.data.gesture_truth import read_truth
from detflow.lib.data.videos import frame_id
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.inference.detector import frame_reader, load_checked_model
from detflow.lib.metrics.boxes import iou_matrix
from detflow.lib.model.device import setup_device
from detflow.lib.training.settings import Settings
from detflow.train import train
from machine import REPO, VOC, cpu_model, project_config, require_demo_dataset

STRATEGIES = ("today", "random", "new")
RESULTS = REPO / "results"
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the process that started it ends


def start_worker(threads, bench):
    """A worker's set-up: end with the ``bench`` process (killed by its PID, it would otherwise leave its
    workers running), then train on ``threads`` CPU threads."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != bench:  # the bench ended before the line above
        os._exit(1)
    setup_device(threads)


def split_videos(split):
    """The videos of a split of the demo's dataset (its frames are named <video>_<index>)."""
    ids = VocTree(VOC).split_image_ids(split)
    return sorted({image_id.rsplit("_", 1)[0] for image_id in ids})


def pool(videos):
    """{image id: (video, frame index, seconds, path)} of the kept frames of ``videos``."""
    frames = {}
    for video in videos:
        for index, seconds, file in read_kept_frames(RESULTS / "frames" / f"{video}.csv"):
            frames[frame_id(file)] = (video, index, seconds, RESULTS / "frames" / video / file)
    return frames


def today(videos, labels, work):
    """Image ids of today's selection of ``labels`` frames: each video's frames by farthest-point sampling,
    the videos taking the frames in turn (the sampling is greedy, so a video's frames only ever grow)."""
    chosen = set()
    for number, video in enumerate(videos):
        per_video = labels // len(videos) + (number < labels % len(videos))
        if not per_video:
            continue
        out = work / "today" / f"{video}_{per_video}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        select_frames(RESULTS / "frames" / f"{video}.csv", RESULTS / "frames" / video, out,
                      frames_per_video=per_video)
        with open(out, newline="") as stream:
            chosen |= {frame_id(row["file"]) for row in csv.DictReader(stream)}
    return chosen


def voc_for(labelled, frames, folder):
    """A VOC tree whose train split is the ``labelled`` frames (labelled from the demo's truth) and whose val
    and test splits are the demo dataset's own."""
    selections, truths, dirs = [], [], []
    for video in sorted({frames[image_id][0] for image_id in labelled}):
        selection = folder / "selections" / f"{video}.csv"
        selection.parent.mkdir(parents=True, exist_ok=True)
        with open(selection, "w", newline="") as stream:
            table = csv.writer(stream)
            table.writerow(SELECTION_COLUMNS)
            table.writerows((frames[i][1], f"{frames[i][2]:.3f}", frames[i][3].name) for i in sorted(labelled)
                            if frames[i][0] == video)
        selections.append(selection)
        truths.append(RESULTS / "demo" / "truth" / f"{video}.csv")
        dirs.append(RESULTS / "frames" / video)
    voc = folder / "voc"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    shutil.copytree(VOC / "JPEGImages", voc / "JPEGImages")
    shutil.copytree(VOC / "Annotations", voc / "Annotations")
    shutil.copy(VOC / "classes.json", voc / "classes.json")
    write_demo_labels(selections, truths, dirs, voc / "Annotations")
    for image_id in labelled:
        shutil.copy(frames[image_id][3], voc / "JPEGImages" / f"{image_id}.jpg")
    main = voc / "ImageSets" / "Main"
    (main / "train.txt").write_text("".join(f"{image_id}\n" for image_id in sorted(labelled)))
    for split in ("val", "test"):
        shutil.copy(VOC / "ImageSets" / "Main" / f"{split}.txt", main / f"{split}.txt")
    return voc


def train_round(voc, folder, settings, config):
    """Train, choose the best snapshot by val mAP, convert it; (inference model path, best snapshot, CPU-s)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    tf.keras.backend.clear_session()
    train(voc, folder / "metrics.csv", folder / "training.json", folder / "snapshots", folder / "tensorboard",
          settings, classes=config["classes"])
    best_snapshot.select_best_snapshot({"round": folder / "training.json"}, "mAP", folder / "best.json",
                                       folder / "best.h5")
    convert.convert(folder / "best.h5", folder / "best.json", folder / "inference.h5", **config["convert"])
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return folder / "inference.h5", folder / "best.h5", cpu


def test_maps(model_path, voc, config):
    card, model = load_checked_model(model_path)
    metrics, _ = evaluate.evaluate_split(model, card, voc, "test", **config["evaluate"])
    return metrics["mAP"], metrics["mAP_50_95"], card, model


def missed(read, added, frames, classes):
    """How much the model that ``read`` runs (detector.frame_reader) missed on the ``added`` frames, by the
    demo's truth: the mean over their true boxes of 1 - the best score x IoU of the model's boxes of the box's
    class."""
    truths, misses = {}, []
    for image_id in sorted(added):
        video, index, _, path = frames[image_id]
        if video not in truths:
            truths[video] = read_truth(RESULTS / "demo" / "truth" / f"{video}.csv")
        boxes, scores, labels = read(cv2.imread(str(path)))
        for name, *box in truths[video].get(index, []):
            same = labels == classes.index(name)
            found = iou_matrix(np.array(box, float), boxes[same])[0] * scores[same] if same.any() else [0.0]
            misses.append(1 - float(np.max(found)))
    return statistics.mean(misses) if misses else 0.0


def model_choice(read, frames, labelled, count, score_threshold):
    """The next_frames stage's choice, by the model that ``read`` runs, among the frames not labelled yet."""
    chosen = next_frames.choose_frames(read, list(frames.values()), labelled, count, score_threshold)
    return {frame_id(path) for (*_, path), _, _ in chosen}


def first_round(seed, frames, videos, args, config, base, work):
    """The round all strategies share: today's selection of ``--first`` frames per video, trained from scratch
    for the whole ``--first-epochs``. Returns what a strategy starts from."""
    labelled = today(videos, args.first * len(videos), work)
    voc = voc_for(labelled, frames, work / "first")
    settings = Settings.from_config({**base, "seed": seed, "epochs": args.first_epochs, "steps": args.steps})
    model_path, snapshot, cpu = train_round(voc, work / "first", settings, config)
    map50, map5095, _, _ = test_maps(model_path, voc, config)
    print(f"seed {seed}, first round (all strategies): {len(labelled)} labels, test mAP@0.5 {map50:.3f}, "
          f"mAP@[.5:.95] {map5095:.3f} ({cpu:.0f} CPU-s)", flush=True)
    return {"labelled": labelled, "model": model_path, "snapshot": snapshot,
            "round": (len(labelled), map50, map5095, cpu, None)}


def later_round(labelled, snapshot, seed, frames, args, config, base, folder):
    """Train the ``labelled`` frames from ``snapshot`` for a later round's budget and test the result:
    (best snapshot, CPU-s, test mAP@0.5, mAP@[.5:.95], the model's card, the model)."""
    voc = voc_for(labelled, frames, folder)
    settings = Settings.from_config({**base, "seed": seed, "weights": str(snapshot), "epochs": args.epochs,
                                     "steps": args.steps, "warmup_steps": args.warmup,
                                     "learning_rate": args.learning_rate})
    model_path, snapshot, cpu = train_round(voc, folder, settings, config)
    return (snapshot, cpu, *test_maps(model_path, voc, config))


def bound_batch(draw, seed, first, frames, args, config, base, work):
    """Test mAP@0.5 after the second round with the ``draw``-th random batch in place of a strategy's."""
    generator = random.Random(1000 * seed + draw)
    added = generator.sample(sorted(set(frames) - first["labelled"]), args.per_round)
    _, cpu, map50, *_ = later_round(first["labelled"] | set(added), first["snapshot"], seed, frames, args, config,
                                    base, work / f"bound{seed}_{draw}")
    print(f"seed {seed}, bound batch {draw}: {' '.join(sorted(added))}, test mAP@0.5 {map50:.3f} ({cpu:.0f} CPU-s)",
          flush=True)
    return map50


def run_strategy(name, seed, first, frames, videos, args, config, base, work):
    """One strategy's rounds from the shared first round: [(labels, mAP@0.5, mAP@[.5:.95], CPU-s, how much
    the last model missed on the frames added; None for the first round)]."""
    labelled, model_path, snapshot = set(first["labelled"]), first["model"], first["snapshot"]
    rounds = [first["round"]]
    card, model = load_checked_model(model_path)
    read = frame_reader(model, card)
    generator = random.Random(seed)
    for number in range(2, args.rounds + 1):
        if rounds[-1][1] >= args.target:
            break
        if name == "today":
            added = today(videos, len(labelled) + args.per_round, work) - labelled
        elif name == "random":
            added = set(generator.sample(sorted(set(frames) - labelled), args.per_round))
        else:
            added = model_choice(read, frames, labelled, args.per_round, config["prelabel"]["score_threshold"])
        miss = missed(read, added, frames, config["classes"])
        labelled |= added
        snapshot, cpu, map50, map5095, card, model = later_round(labelled, snapshot, seed, frames, args, config,
                                                                 base, work / f"{name}{seed}_{number}")
        read = frame_reader(model, card)
        rounds.append((len(labelled), map50, map5095, cpu, miss))
        print(f"seed {seed}, {name} round {number}: {len(labelled)} labels (the last model missed {miss:.2f} on those "
              f"added), test mAP@0.5 {map50:.3f}, mAP@[.5:.95] {map5095:.3f} ({cpu:.0f} CPU-s)", flush=True)
    return rounds


def labels_to_reach(rounds, target):
    return next((labels for labels, map50, *_ in rounds if map50 >= target), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=1, help="frames per training video in the first round")
    parser.add_argument("--per-round", type=int, default=3, help="frames labelled in each later round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds at most, the first included")
    parser.add_argument("--first-epochs", type=int, default=10,
                        help="epochs of the first round, from scratch (the demo's whole budget)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each later round (warm start)")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch in every round")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps of the later rounds")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="peak rate of the later rounds")
    parser.add_argument("--target", type=float, default=0.9, help="test mAP@0.5 a strategy must reach")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="training seeds (and random draws): the whole experiment runs once per seed")
    parser.add_argument("--only", nargs="*", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--bound", type=int, default=0, metavar="K",
                        help="also train K random batches of the second round per seed; print the best's test mAP")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="processes training side by side, each on cores / workers threads")
    args = parser.parse_args()
    if args.workers < 1 or args.bound < 0:
        parser.error("--workers must be at least 1 and --bound at least 0")
    require_demo_dataset()
    config = project_config()
    base = {key: value for key, value in config["train"].items() if key not in ("variants",)}
    videos = split_videos("train")
    frames = pool(videos)
    threads = max(1, os.cpu_count() // args.workers)
    print(f"CPU: {cpu_model()}, {args.workers} workers of {threads} thread(s); {len(frames)} kept frames of "
          f"{len(videos)} training videos to choose from; val and test: the demo's own splits", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as temporary, ProcessPoolExecutor(
            args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
            initargs=(threads, os.getpid())) as workers:
        firsts = {workers.submit(first_round, seed, frames, videos, args, config, base,
                                 Path(temporary) / f"seed{seed}"): seed for seed in args.seeds}
        strategies, bounds = {}, {}
        for done in as_completed(firsts):
            seed, work = firsts[done], Path(temporary) / f"seed{firsts[done]}"
            for name in args.only:
                strategies[seed, name] = workers.submit(run_strategy, name, seed, done.result(), frames, videos, args,
                                                        config, base, work)
            for draw in range(args.bound):
                bounds[seed, draw] = workers.submit(bound_batch, draw, seed, done.result(), frames, args, config,
                                                    base, work)
        results = {seed: {name: strategies[seed, name].result() for name in args.only} for seed in args.seeds}
        bound = {seed: [bounds[seed, draw].result() for draw in range(args.bound)] for seed in args.seeds}
    if args.only:
        report(results, args)
    if args.bound:
        report_bound(bound, results, args)
    print(json.dumps({"rounds": results, "bound": bound, "minutes": round((time.time() - started) / 60, 1),
                      "workers": args.workers, "threads_per_worker": threads}))


def report(results, args):
    """Per seed the rounds, per strategy the labels it needed, their medians and the ratio new / today."""
    for seed, strategies in results.items():
        print(f"\nseed {seed}: labels test-mAP@0.5/mAP@[.5:.95] (missed on those added) per round")
        for name, rounds in strategies.items():
            print(f"{name:<8} " + " ".join(f"{labels:>4} {map50:.3f}/{map5095:.3f}" + ("" if miss is None else
                                                                                        f" ({miss:.2f})")
                                           for labels, map50, map5095, _, miss in rounds))
    print("\nmean test mAP@0.5 over the later rounds every strategy ran (the learning curve's height)")
    for seed, strategies in results.items():
        print(f"seed {seed}: {curve_means(strategies)}")
    print("\nmean of how much the last model missed on the frames each strategy added (1: not found at all)")
    for seed, strategies in results.items():
        print(f"seed {seed}: " + ", ".join(f"{name} {statistics.mean(miss for *_, miss in rounds[1:]):.2f}"
                                           for name, rounds in strategies.items() if rounds[1:]))
    print(f"\nlabels to first reach test mAP@0.5 {args.target} (- : not within the rounds)")
    medians = {}
    for name in args.only:
        needed = [labels_to_reach(strategies[name], args.target) for strategies in results.values()]
        medians[name] = statistics.median(math.inf if labels is None else labels for labels in needed)
        median = "-" if math.isinf(medians[name]) else f"{medians[name]:g}"
        print(f"{name:<8} seeds {' '.join(str(labels or '-') for labels in needed)}: median {median}")
    if "new" in medians and "today" in medians:
        print(f"labels new / today (medians, target <= 0.6): {ratio(medians['new'], medians['today'], results, args)}")


def report_bound(bound, results, args):
    """Per seed the best and median test mAP@0.5 of the random batches, beside each strategy's second round."""
    print(f"\nbound: test mAP@0.5 after the second round with {args.bound} random batches, picked by the test "
          "split (no strategy can see it)")
    for seed, maps in bound.items():
        ran = ", ".join(f"{name} {rounds[1][1]:.3f}" for name, rounds in results[seed].items() if rounds[1:])
        print(f"seed {seed}: best {max(maps):.3f}, median {statistics.median(maps):.3f}" + (f"; {ran}" if ran else ""))


def curve_means(strategies):
    """Each strategy's mean test mAP@0.5 over the label counts after the shared first round that every
    strategy reached, as text (none where one stopped at the first round)."""
    later = [{labels: map50 for labels, map50, *_ in rounds[1:]} for rounds in strategies.values()]
    common = sorted(set.intersection(*(set(labels) for labels in later)))
    if not common:
        return "- (a strategy reached the target in the first round)"
    means = ", ".join(f"{name} {statistics.mean(rounds[labels] for labels in common):.3f}"
                      for name, rounds in zip(strategies, later))
    return f"{means} ({common[0]} to {common[-1]} labels)"


def ratio(new, today, results, args):
    """new / today as text; where today never reached the target, the most it can be (today needing one
    round more than it ran)."""
    if math.isinf(new):
        return "- (new did not reach the target)"
    if math.isinf(today):
        most = max(strategies["today"][-1][0] for strategies in results.values())
        return f"at most {new / (most + args.per_round):.2f} (today did not reach the target within {most} labels)"
    return f"{new / today:.2f}"


if __name__ == "__main__":
    main()
