"""Leak-free train/val/test splits of the VOC dataset: ``ImageSets/Main/{train,
val,trainval,test}.txt`` plus a report (``splits.json``, ``splits.txt``).

How a split is chosen, and why:

- Frames of one video are near-duplicates, so with ``split.group_by: video``
  whole videos (the ``group`` column of images.csv) are assigned, never single
  frames; ``image`` assigns image by image.
- Each group's split depends only on the seed and the group's name: SHA-256 of
  ``"<seed>:<group>"`` gives a number u in [0, 1), and u < train goes to
  train, u < train + val to val, the rest to test. The same seed and names
  always give the same split on any machine (never Python's ``hash()``, which
  is salted per process), adding a video never moves another one, and moving
  a fraction moves only the groups between the old and new threshold.
- Balance versus stability: if adding any group must never move an existing
  one, a group's split can depend on nothing but itself and the seed (add the
  others one at a time and none may move). So no stable rule can rebalance
  classes as data grows; any "rebalancing" is exactly a move. (Using the
  group's own content, such as its classes, would still place each group
  independently, and would move a video whenever its labels are edited: the
  hash takes the name only.) The one
  legitimate lever is the seed, which is the person's own, recorded choice.
  The report therefore measures the class balance of the split (boxes per
  class per split against the configured fractions), warns when a class is
  absent from a split, and lists seeds that balance the current groups
  clearly better (a quarter less imbalance or more), if any. Pinning one of
  those in ``split.seed`` balances the split once; it then stays stable as
  more videos arrive.
- An empty train or val split is an error (training needs both), with the
  seeds that would fill them; an empty test split is a warning.
- trainval is exactly train ∪ val; the three splits are disjoint. Every list
  holds image ids sorted by name, one per line, without extension.
"""
import argparse
import csv
import json
import logging
from collections import Counter
from pathlib import Path

from detflow.lib.cli import InputError, run
from detflow.lib.data.split_rule import SPLITS, split_of
from detflow.lib.data.voc_tree import VocTree, read_classes

log = logging.getLogger(__name__)

LIST_FILES = ("train", "val", "trainval", "test")
SEED_SEARCH_HASHES = 200_000  # seeds tried x groups: keeps the seed search well under a second
SUGGESTED_SEEDS = 3
CLEARLY_BETTER = 0.75  # a seed is suggested only if it cuts the imbalance by a quarter or more: no churn over noise


def check_fractions(fractions):
    for name in SPLITS:
        if not 0 <= fractions[name] <= 1:
            raise InputError(f"split.{name}", f"must be between 0 and 1, not {fractions[name]}")
    for name in ("train", "val"):
        if fractions[name] <= 0:
            raise InputError(f"split.{name}", "must be above 0: training needs both a train and a val split")
    total = sum(fractions[name] for name in SPLITS)
    if abs(total - 1) > 1e-6:
        raise InputError("split", f"train + val + test must be 1, they sum to {total:g}")


def read_images(images_csv, classes_json):
    """The rows of images.csv as (image_id, group, Counter of boxes per class), and the class names."""
    classes = list(read_classes(classes_json))
    rows = []
    try:
        with open(images_csv, newline="") as stream:
            reader = csv.DictReader(stream)
            missing = {"image_id", "group", *(f"boxes_{name}" for name in classes)} - set(reader.fieldnames or [])
            if missing:
                raise InputError(images_csv, f"lacks the columns {', '.join(sorted(missing))}")
            for row in reader:
                counts = Counter({name: int(row[f"boxes_{name}"]) for name in classes})
                rows.append((row["image_id"], row["group"], counts))
    except (OSError, ValueError) as error:
        raise InputError(images_csv, f"cannot be read as the dataset's image table: {error}")
    return rows, classes


def _group_key(group_by):
    return (lambda row: row[1]) if group_by == "video" else (lambda row: row[0])


def tally(rows, assignment, group_key, classes):
    """Per split: groups, images, images without boxes, boxes and images per class."""
    stats = {name: {"groups": set(), "images": 0, "negatives": 0, "boxes": Counter(), "images_with": Counter()}
             for name in SPLITS}
    for row in rows:
        split = stats[assignment[group_key(row)]]
        split["groups"].add(group_key(row))
        split["images"] += 1
        counts = row[2]
        split["negatives"] += not any(counts.values())
        split["boxes"].update(counts)
        split["images_with"].update(name for name, count in counts.items() if count)
    return {
        name: {"groups": len(value["groups"]), "images": value["images"], "negatives": value["negatives"],
               "boxes": {c: value["boxes"][c] for c in classes}, "images_with": {c: value["images_with"][c] for c in classes}}
        for name, value in stats.items()
    }


def imbalance(group_counts, assignment, fractions, classes):
    """How far the split is from the fractions: summed |share - fraction| over the images and each
    class's boxes, plus 1 for every split (with a fraction above 0) that lacks images or a class."""
    totals = {"images": Counter(), **{name: Counter() for name in classes}}
    for group, (images, counts) in group_counts.items():
        split = assignment[group]
        totals["images"][split] += images
        for name in classes:
            totals[name][split] += counts[name]
    score = 0.0
    for per_split in totals.values():
        whole = sum(per_split.values())
        if not whole:
            continue
        for split in SPLITS:
            if fractions[split] > 0:
                score += abs(per_split[split] / whole - fractions[split]) + (per_split[split] == 0)
    return score


def better_seeds(group_counts, seed, fractions, classes):
    """Up to three seeds that balance these groups clearly better than ``seed``, best first, with their scores."""
    current = imbalance(group_counts, {g: split_of(g, seed, fractions) for g in group_counts}, fractions, classes)
    tries = max(20, min(1000, SEED_SEARCH_HASHES // max(len(group_counts), 1)))
    scored = []
    for candidate in range(tries):
        if candidate != seed:
            assignment = {g: split_of(g, candidate, fractions) for g in group_counts}
            scored.append((round(imbalance(group_counts, assignment, fractions, classes), 4), candidate))
    scored.sort()
    clearly_better = [{"seed": s, "imbalance": score} for score, s in scored if score <= current * CLEARLY_BETTER]
    return current, clearly_better[:SUGGESTED_SEEDS]


def warnings_for(stats, fractions, classes, groups, group_by):
    warnings = []
    kind = "videos" if group_by == "video" else "images"
    wanted = [name for name in SPLITS if fractions[name] > 0]
    if len(groups) < len(wanted):
        warnings.append(f"only {len(groups)} {kind} for {len(wanted)} splits: some split must stay empty")
    for name in wanted:
        split = stats[name]
        if not split["images"]:
            warnings.append(f"{name} is empty (no {kind} fell into it)")
            continue
        for class_name in classes:
            if not split["boxes"][class_name]:
                warnings.append(f"class {class_name!r} is absent from {name} ({split['images']} images)")
    if stats["val"]["images"] and not any(stats["val"]["boxes"].values()):
        warnings.append("val has no boxes at all: validation mAP cannot be computed")
    return warnings


def make_splits(images_csv, classes_json, output_dir, *, seed, fractions, group_by="video"):
    """Write ImageSets/Main/*.txt, splits.json and splits.txt under ``output_dir``; return the summary."""
    check_fractions(fractions)
    rows, classes = read_images(images_csv, classes_json)
    if not rows:
        raise InputError(images_csv, "lists no images: there is nothing to split")
    group_key = _group_key(group_by)
    group_counts = {}
    for row in rows:
        images, counts = group_counts.get(group_key(row), (0, Counter()))
        group_counts[group_key(row)] = (images + 1, counts + row[2])
    assignment = {group: split_of(group, seed, fractions) for group in sorted(group_counts)}
    members = {name: sorted(row[0] for row in rows if assignment[group_key(row)] == name) for name in SPLITS}
    members["trainval"] = sorted(members["train"] + members["val"])
    tree = VocTree(output_dir)
    tree.lists.mkdir(parents=True, exist_ok=True)
    for name in LIST_FILES:
        tree.split_file(name).write_text("".join(f"{image_id}\n" for image_id in members[name]))
    stats = tally(rows, assignment, group_key, classes)
    current, suggestions = better_seeds(group_counts, seed, fractions, classes)
    summary = {
        "seed": seed,
        "group_by": group_by,
        "fractions": {name: fractions[name] for name in SPLITS},
        "classes": classes,
        "splits": stats,
        "imbalance": round(current, 4),
        "better_seeds": suggestions,
        "warnings": warnings_for(stats, fractions, classes, group_counts, group_by),
        "groups": assignment,
    }
    (Path(output_dir) / "splits.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (Path(output_dir) / "splits.txt").write_text(readable_report(summary))
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    empty = [name for name in ("train", "val") if not stats[name]["images"]]
    if empty:
        kind = "videos" if group_by == "video" else "images"
        seeds = f"; seeds that fill the splits better: {', '.join(str(s['seed']) for s in suggestions)}" if suggestions else ""
        advice = f"add {kind}" + (" or set split.group_by: image" if group_by == "video" else "")
        raise InputError("split", f"{' and '.join(empty)} would be empty with {len(group_counts)} {kind} and seed "
                                  f"{seed}: training needs both{seeds}; or {advice}")
    return summary


def readable_report(summary):
    """splits.json as a table a person reads."""
    classes = summary["classes"]
    kind = "videos" if summary["group_by"] == "video" else "images"
    lines = [
        f"Split by {summary['group_by']} with seed {summary['seed']}, fractions "
        + ", ".join(f"{name} {value:g}" for name, value in summary["fractions"].items()),
        "",
        "\t".join(["split", *(["videos"] if kind == "videos" else []), "images", "negatives",
                   *(f"boxes {c}" for c in classes), *(f"images with {c}" for c in classes)]),
    ]
    for name in SPLITS:
        split = summary["splits"][name]
        lines.append("\t".join(str(value) for value in [
            name, *([split["groups"]] if kind == "videos" else []), split["images"], split["negatives"],
            *(split["boxes"][c] for c in classes), *(split["images_with"][c] for c in classes)]))
    lines.append("")
    lines += [f"Warning: {warning}" for warning in summary["warnings"]]
    lines.append(f"Imbalance {summary['imbalance']:g} (0: every split holds its fraction of the images and of each class's boxes).")
    if summary["better_seeds"]:
        options = ", ".join(f"{item['seed']} ({item['imbalance']:g})" for item in summary["better_seeds"])
        lines.append(f"Seeds that balance these {kind} better: {options}. Pinning one in split.seed reshuffles once; "
                     f"{kind} added later never move.")
    if summary["group_by"] == "video":
        lines += ["", "video\tsplit", *(f"{group}\t{split}" for group, split in summary["groups"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", help="images.csv of the dataset stage")
    parser.add_argument("classes", help="classes.json of the dataset stage")
    parser.add_argument("output", help="the VOC folder: ImageSets/Main/ and splits.json/.txt are written there")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--train", type=float, required=True)
    parser.add_argument("--val", type=float, required=True)
    parser.add_argument("--test", type=float, required=True)
    parser.add_argument("--group-by", choices=("video", "image"), required=True)
    args = parser.parse_args(argv)
    fractions = {"train": args.train, "val": args.val, "test": args.test}
    summary = make_splits(args.images, args.classes, args.output, seed=args.seed, fractions=fractions, group_by=args.group_by)
    log.info("split: %s", ", ".join(f"{name} {summary['splits'][name]['images']} images" for name in SPLITS))


if __name__ == "__main__":
    run(main)
