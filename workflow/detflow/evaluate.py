"""Evaluation stage: per-class average precision (AP) and mAP of the inference
model on a dataset split, computed by keras-retinanet's own evaluation code
(``keras_retinanet.utils.eval.evaluate`` over its ``PascalVocGenerator``), and
the precision-recall curve of every class.

- The generator reads the split's images and annotations as training's
  validation does: the training image sizes, the backbone's preprocessing.
- mAP is the mean AP over the classes that have boxes in the split, as
  keras-retinanet's evaluate script and the training stage's validation mAP
  compute it; the box-weighted mean is given too. A class without boxes in the
  split has no AP (null), not 0.
- ``evaluate`` computes each class's precision-recall curve but returns only
  its AP. The curves are recorded from the library's own AP function while it
  runs (``detflow.lib.metrics.retinanet_eval``), and each curve's AP is checked against
  the returned AP.
- The same boxes and detections (recorded while ``evaluate`` collects them)
  also give the COCO metrics users compare detectors by, computed by
  pycocotools (``detflow.lib.metrics.coco``): mAP@[.5:.95], AP50 and AP75
  overall and per class, and a confusion matrix with background at
  ``iou_threshold`` for detections scoring at least ``confusion_score_threshold``.
- A split without images or without boxes gives metrics with mAP null and a
  note, not an error; an image that cannot be read is left out and listed.

Outputs: metrics JSON and CSV, the curves as a PNG, the confusion matrix as
CSV and PNG.
"""
import argparse
import csv
import json
import logging

import numpy as np
from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator
from keras_retinanet.utils import eval as retinanet_eval
from keras_retinanet.utils.colors import label_color

from detflow.lib.cli import InputError, add_model_options, model_options, prog, run
from detflow.lib.data.voc_tree import VocTree, read_classes
from detflow.lib.files import replacing, write_atomically
from detflow.lib.inference.detector import Unreadable, load_checked_model, read_images
from detflow.lib.metrics.coco import BACKGROUND, coco_metrics, confusion_matrix
from detflow.lib.metrics.retinanet_eval import recorded_boxes, recorded_pr_curves
from detflow.lib.model import retinanet
from detflow.lib.model.card import check_classes

log = logging.getLogger(__name__)

CSV_COLUMNS = ("class", "boxes", "detections", "average_precision", "max_recall", "mAP_50_95", "AP50", "AP75")
COCO_KEYS = ("mAP_50_95", "AP50", "AP75")


class ReadableVocGenerator(PascalVocGenerator):
    """keras-retinanet's Pascal VOC generator over the images of a split minus ``unreadable`` ones
    (the library reads its list of image ids from the split file and cannot skip a bad image)."""

    def __init__(self, *args, unreadable=(), **kwargs):
        self._unreadable = set(unreadable)
        super().__init__(*args, **kwargs)

    @property
    def image_names(self):
        return self._image_names

    @image_names.setter
    def image_names(self, names):
        self._image_names = [name for name in names if name not in self._unreadable]


def unreadable_images(tree, image_ids):
    """[{image, file, reason}] for the images of ``image_ids`` that cannot be read."""
    paths = ((image_id, tree.image(image_id)) for image_id in image_ids)
    return [{"image": image_id, "file": image.file, "reason": image.reason}
            for image_id, image in read_images(paths) if isinstance(image, Unreadable)]


def _library_evaluation(model, card, tree, split, unreadable, iou_threshold, score_threshold, max_detections):
    """keras-retinanet's evaluation of the readable images of a split: ({class: (AP, boxes)},
    {class: (recall, precision)}, seconds per image, {"annotations", "detections"} per image and label)."""
    generator = ReadableVocGenerator(
        str(tree.root), split, classes=card.class_map, unreadable=[item["image"] for item in unreadable],
        image_min_side=card.image_min_side, image_max_side=card.image_max_side,
        preprocess_image=retinanet.backbone(card.backbone).preprocess_image, shuffle_groups=False,
    )
    with recorded_pr_curves() as recorded, recorded_boxes() as boxes:
        average_precisions, seconds_per_image = retinanet_eval.evaluate(
            generator, model, iou_threshold=iou_threshold, score_threshold=score_threshold,
            max_detections=max_detections,
        )
    with_boxes = [label for label in sorted(average_precisions) if average_precisions[label][1] > 0]
    if len(recorded) != len(with_boxes) or any(
            not np.isclose(recorded[i][2], average_precisions[label][0]) for i, label in enumerate(with_boxes)):
        raise RuntimeError("the recorded precision-recall curves do not match keras-retinanet's APs")
    curves = {generator.label_to_name(label): (recall, precision)
              for (recall, precision, _), label in zip(recorded, with_boxes)}
    results = {generator.label_to_name(label): value for label, value in average_precisions.items()}
    return results, curves, seconds_per_image, boxes


def evaluate_split(model, card, voc_dir, split, *, iou_threshold, score_threshold, max_detections,
                   confusion_score_threshold):
    """Metrics of ``model`` (described by ``card``) on a split: (metrics dict, {class name: (recall, precision)})."""
    tree = VocTree(voc_dir)
    check_classes(card, "the model", read_classes(tree.classes_file), f"the dataset ({tree.classes_file})")
    image_ids = tree.split_image_ids(split)
    unreadable = unreadable_images(tree, image_ids)
    readable = len(image_ids) - len(unreadable)
    if image_ids and not readable:
        raise InputError(tree.images, f"none of the {len(image_ids)} images of the {split} split can "
                                      f"be read, e.g. {unreadable[0]['file']}: {unreadable[0]['reason']}")
    results, curves, seconds_per_image, boxes = {}, {}, None, {"annotations": [], "detections": []}
    if readable:
        results, curves, seconds_per_image, boxes = _library_evaluation(
            model, card, tree, split, unreadable, iou_threshold, score_threshold, max_detections)
    coco = coco_metrics(boxes["annotations"], boxes["detections"], card.classes, max_detections)
    matrix = confusion_matrix(boxes["annotations"], boxes["detections"], len(card.classes), iou_threshold,
                              confusion_score_threshold)
    per_class = _per_class(card, results, curves, coco["classes"])
    scored = [item for item in per_class if item["average_precision"] is not None]
    total_boxes = sum(item["boxes"] for item in scored)
    metrics = {
        "split": split,
        "images": readable,
        "images_listed": len(image_ids),
        "unreadable": unreadable,
        "iou_threshold": iou_threshold,
        "score_threshold": score_threshold,
        "max_detections": max_detections,
        "mAP": float(np.mean([item["average_precision"] for item in scored])) if scored else None,
        **coco["overall"],
        "confusion_score_threshold": confusion_score_threshold,
        # Rows: true class, then background; columns: predicted class, then background.
        "confusion_matrix": {"classes": [*card.classes, BACKGROUND], "counts": matrix.tolist()},
        "weighted_mAP": (sum(item["average_precision"] * item["boxes"] for item in scored) / total_boxes
                         if scored else None),
        "classes_with_boxes": len(scored),
        "boxes": total_boxes,
        "seconds_per_image": float(seconds_per_image) if seconds_per_image is not None else None,
        "classes": per_class,
        "notes": _notes(split, image_ids, readable, per_class, score_threshold),
    }
    return metrics, curves


def _per_class(card, results, curves, coco_classes):
    """Each class's entry of the metrics: boxes, detections, AP and highest recall (None without boxes)."""
    per_class = []
    for label, name in enumerate(card.classes):
        boxes = int(results[name][1]) if name in results else 0
        recall, precision = curves.get(name, (np.zeros(0), np.zeros(0)))
        per_class.append({
            "class": name,
            "label": label,
            "boxes": boxes,
            "detections": int(len(recall)) if boxes else None,
            "average_precision": float(results[name][0]) if boxes else None,
            "max_recall": float(recall[-1]) if len(recall) else (0.0 if boxes else None),
            **coco_classes[name],
        })
    return per_class


def _notes(split, image_ids, readable, per_class, score_threshold):
    if not image_ids:
        return [f"the {split} split lists no images: nothing to evaluate"]
    notes = []
    if readable < len(image_ids):
        notes.append(f"{len(image_ids) - readable} of the {len(image_ids)} images cannot be read and are left out")
    if not any(item["boxes"] for item in per_class):
        notes.append(f"no image of the {split} split has a box: AP and mAP are undefined")
    for item in per_class:
        if not item["boxes"] and any(other["boxes"] for other in per_class):
            notes.append(f"class {item['class']!r} has no box in the {split} split: no AP, left out of mAP")
        elif item["boxes"] and not item["detections"]:
            notes.append(f"class {item['class']!r}: no detection scores above {score_threshold:g}, so its AP is 0")
    return notes


def write_metrics(metrics, json_path, csv_path):
    write_atomically(json_path, json.dumps(metrics, indent=2) + "\n")
    with replacing(csv_path) as partial, open(partial, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for item in metrics["classes"]:
            writer.writerow([item["class"], item["boxes"], _blank(item["detections"]),
                             _blank(item["average_precision"], "{:.4f}"), _blank(item["max_recall"], "{:.4f}"),
                             *(_blank(item[key], "{:.4f}") for key in COCO_KEYS)])
        writer.writerow(["mAP", metrics["boxes"], "", _blank(metrics["mAP"], "{:.4f}"), "",
                         *(_blank(metrics[key], "{:.4f}") for key in COCO_KEYS)])


def write_confusion_csv(metrics, csv_path):
    """Rows: true class (then background, i.e. detections of nothing); columns: predicted class (then
    background, i.e. boxes not found)."""
    names, matrix = metrics["confusion_matrix"]["classes"], metrics["confusion_matrix"]["counts"]
    with replacing(csv_path) as partial, open(partial, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["true / predicted", *names])
        for name, row in zip(names, matrix):
            writer.writerow([name, *(int(count) for count in row)])


def plot_confusion_matrix(metrics, png_path):
    """The counts as a heat map, true class down, predicted class across."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names, matrix = metrics["confusion_matrix"]["classes"], np.array(metrics["confusion_matrix"]["counts"])
    figure, axes = pyplot.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 2), dpi=110)
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{metrics['split']} split: IoU >= {metrics['iou_threshold']:g}, "
                   f"score >= {metrics['confusion_score_threshold']:g}")
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)


def _blank(value, form="{}"):
    return "" if value is None else form.format(value)


def plot_pr_curves(metrics, curves, png_path):
    """One precision-recall curve per class, in the colours of the annotated images."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6.4, 4.8), dpi=110)
    for item in metrics["classes"]:
        colour = [value / 255 for value in reversed(label_color(item["label"]))]  # BGR, as OpenCV draws it
        if item["average_precision"] is None:
            axes.plot([], [], color=colour, label=f"{item['class']}: no boxes in this split")
            continue
        recall, precision = curves.get(item["class"], (np.zeros(0), np.zeros(0)))
        found = "" if item["detections"] else ", no detections"
        axes.plot(recall, precision, color=colour, linewidth=1.8,
                  label=f"{item['class']}: AP {item['average_precision']:.3f} ({item['boxes']} boxes{found})")
    if not any(len(recall) for recall, _ in curves.values()):
        message = metrics["notes"][0] if metrics["notes"] else "no detections"
        axes.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axes.transAxes)
    score = "undefined" if metrics["mAP"] is None else f"{metrics['mAP']:.3f}"
    axes.set_title(f"{metrics['split']} split, {metrics['images']} images: mAP@{metrics['iou_threshold']:g} = {score}")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("evaluate"), description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the inference model (.h5)")
    parser.add_argument("voc_dir", help="the VOC dataset (JPEGImages, Annotations, ImageSets/Main)")
    parser.add_argument("split", help="the split to evaluate: train, val or test")
    parser.add_argument("--metrics-json", required=True, help="metrics JSON to write")
    parser.add_argument("--metrics-csv", required=True, help="metrics CSV to write")
    parser.add_argument("--pr-curves", required=True, help="precision-recall curves PNG to write")
    parser.add_argument("--confusion-csv", required=True, help="confusion matrix CSV to write")
    parser.add_argument("--confusion-png", required=True, help="confusion matrix PNG to write")
    parser.add_argument("--iou-threshold", type=float, required=True, help="IoU for a detection to match a box")
    parser.add_argument("--score-threshold", type=float, required=True, help="lowest detection score evaluated")
    parser.add_argument("--max-detections", type=int, required=True, help="most detections per image evaluated")
    parser.add_argument("--confusion-score-threshold", type=float, required=True,
                        help="lowest detection score counted in the confusion matrix")
    add_model_options(parser)  # keras-retinanet's evaluation runs the Keras model
    args = parser.parse_args(argv)
    card, model = load_checked_model(args.model, **model_options(args))
    metrics, curves = evaluate_split(
        model, card, args.voc_dir, args.split, iou_threshold=args.iou_threshold, score_threshold=args.score_threshold,
        max_detections=args.max_detections, confusion_score_threshold=args.confusion_score_threshold)
    write_metrics(metrics, args.metrics_json, args.metrics_csv)
    plot_pr_curves(metrics, curves, args.pr_curves)
    write_confusion_csv(metrics, args.confusion_csv)
    plot_confusion_matrix(metrics, args.confusion_png)
    for note in metrics["notes"]:
        log.warning("%s", note)
    log.info("%s: mAP@%g %s, mAP@[.5:.95] %s over %d images; AP %s", args.split, args.iou_threshold,
             _blank(metrics["mAP"], "{:.4f}") or "undefined", _blank(metrics["mAP_50_95"], "{:.4f}") or "undefined",
             metrics["images"],
             ", ".join(f"{item['class']} {_blank(item['average_precision'], '{:.4f}') or '-'}"
                       for item in metrics["classes"]))


if __name__ == "__main__":
    run(main)
