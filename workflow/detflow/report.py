"""Report stage: the pieces of the run's HTML report (``snakemake --report``)
and its one-page summary.

- ``training``: loss and validation mAP per epoch of every training variant,
  read from the TensorBoard event files with the best-snapshot stage's reader,
  on one PNG with the chosen epoch marked; and an HTML page saying which
  variant and snapshot were chosen and why, with each variant's best and every
  epoch's values of the chosen one.
- ``dataset``: images, negatives and boxes per class in each split (from
  ``splits.json``) and what the annotation check found (``validation.json``).
- ``results``: the metrics table (AP per class and mAP per split) and what
  was detected in every split and video, saying so plainly when nothing was,
  with the gesture events of every video and, for the demo, how many true
  gesture appearances became exactly one event.
- ``gallery``: a contact sheet of annotated images of a split.
- ``summary``: ``summary.txt`` with the headline numbers; the test mAP is
  also printed, as the run's last word.

Plots use matplotlib's Agg backend; no TensorFlow is needed here.
"""
import argparse
import html
import json
import logging
import math
from pathlib import Path

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.gesture_truth import read_truth
from detflow.lib.data.videos import video_id
from detflow.lib.inference.events import truth_match_totals
from detflow.lib.training.tensorboard_logs import read_scalars

log = logging.getLogger(__name__)

GALLERY_IMAGES = 12
OPTIONAL_LOSSES = ("regression_loss", "classification_loss")  # the two parts of the training loss
GALLERY_COLUMNS = 4
STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 12px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
tr.chosen td { background: #fff3c4; font-weight: bold; }
p.note { color: #8a4b00; margin: 4px 0; }
p.alert { color: #fff; background: #b3261e; padding: 6px 10px; font-weight: bold; }
</style>"""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot be read as JSON: {error}")


def _number(value, form="{:.3f}", missing="–"):
    return missing if value is None else form.format(value)


def _page(title, *parts):
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body>\n<h2>{html.escape(title)}</h2>\n" + "\n".join(parts) + "\n</body></html>\n")


def _table(header, rows, chosen=None):
    lines = ["<table>"]
    if header:
        lines.append("<tr>" + "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header) + "</tr>")
    for index, row in enumerate(rows):
        marker = ' class="chosen"' if index == chosen else ""
        lines.append(f"<tr{marker}>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>")
    return "\n".join(lines + ["</table>"])


def _paragraphs(texts, kind="note"):
    return "\n".join(f'<p class="{kind}">{html.escape(text)}</p>' for text in texts)


# ---------------------------------------------------------------- training


def training_values(training, class_names):
    """{series: {epoch: value}} from the TensorBoard logs, epochs counted from 1: "loss" and "mAP" (always
    logged), and where logged the two parts of the loss and each class's validation AP ("AP_<class>")."""
    tensorboard_run = Path(training["tensorboard_dir"]) / training["tensorboard_run"]
    epochs = training["epochs_completed"]

    def series(name):
        return {step + 1: value for step, value in read_scalars(tensorboard_run, f"epoch_{name}").items()
                if step < epochs}

    values = {"loss": series("loss"), "mAP": series("mAP")}
    for name in (*OPTIONAL_LOSSES, *(f"AP_{name}" for name in class_names)):
        try:
            values[name] = series(name)
        except InputError:  # not logged (the logs exist: loss and mAP were read)
            log.info("no %s in the TensorBoard logs; not plotted", name)
    return values


def why_chosen(best, epochs):
    """One sentence: which snapshot and why."""
    goal = "highest validation mAP" if best["goal"] == "max" else "lowest training loss"
    among = f" of the {len(best['variants'])} variants" if len(best["variants"]) > 1 else ""
    return (f"Epoch {best['epoch']} of {epochs} of variant {best['variant']} was chosen: it has the {goal}{among} "
            f"({best['metric']} = {best['value']:.4f}; select.metric: {best['metric']}, ties go to the earliest "
            f"epoch and the variant listed first). Its snapshot {best['snapshot']} was copied to "
            f"{best['best_snapshot']} and converted into the inference model.")


VARIANT_COLOURS = ("#1f5fbf", "#2e8b3a", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#c0392b", "#b7950b")


def plot_training_curves(runs, best, png_path):
    """Loss (top) and validation mAP (bottom) of every variant (``runs``: {variant: values}) on one plot;
    the chosen variant also with the two parts of its loss and its AP per class, its chosen epoch starred."""
    pyplot = _pyplot()
    figure, (loss_axes, map_axes) = pyplot.subplots(2, 1, figsize=(7.5, 6.6), dpi=110, sharex=True)
    several = len(runs) > 1
    for index, (variant, values) in enumerate(runs.items()):
        colour = VARIANT_COLOURS[index % len(VARIANT_COLOURS)]
        prefix = f"{variant}: " if several else ""
        lines = [(loss_axes, "loss", "o-", "training loss"), (map_axes, "mAP", "o-", "validation mAP@0.5")]
        if variant == best["variant"]:
            lines += [(loss_axes, "regression_loss", "--", "regression part"),
                      (loss_axes, "classification_loss", ":", "classification part")]
            lines += [(map_axes, name, "--", f"validation AP {name[3:]}") for name in values if name.startswith("AP_")]
        for axes, name, style, label in lines:
            if name in values:
                epochs = sorted(values[name])
                axes.plot(epochs, [values[name][epoch] for epoch in epochs], style, markersize=4,
                          color=None if name.startswith("AP_") else colour,
                          linewidth=2 if style == "o-" else 1.2, label=prefix + label)
    chosen = runs[best["variant"]]
    for axes, metric in ((loss_axes, "loss"), (map_axes, "mAP")):
        axes.axvline(best["epoch"], color="#c0392b", linestyle="--", linewidth=1)
        if best["epoch"] in chosen[metric]:
            axes.plot([best["epoch"]], [chosen[metric][best["epoch"]]], "*", color="#c0392b", markersize=14,
                      label=f"chosen: {best['variant'] + ', ' if several else ''}epoch {best['epoch']}")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=7 if several else 8)
    map_axes.set_ylim(0, 1.02)
    map_axes.set_xlabel("epoch")
    title = (f"Training of {len(runs)} variants; chosen: {best['variant']} ({best['backbone']})" if several else
             f"Training of the {best['backbone']} RetinaNet (FPN and heads {best['feature_size']} wide)")
    loss_axes.set_title(title)
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)


def variants_table(best):
    """Every variant and its best epoch by the selection metric, the chosen one highlighted."""
    rows = [[item["variant"], item["backbone"], item["feature_size"],
             f"{item['image_min_side']}-{item['image_max_side']}", item["epochs_completed"], item["best_epoch"],
             f"{item['value']:.4f}"] for item in best["variants"]]
    chosen = next(index for index, item in enumerate(best["variants"]) if item["variant"] == best["variant"])
    return _table(["variant", "backbone", "FPN and head width", "image sizes (px)", "epochs", "best epoch",
                   f"best {best['metric']}"], rows, chosen)


def model_page(training, best, values):
    epochs = training["epochs_completed"]
    rows = [[epoch, _number(values["loss"].get(epoch), "{:.4f}"), _number(values["mAP"].get(epoch), "{:.4f}")]
            for epoch in sorted(set(values["loss"]) | set(values["mAP"]))]
    chosen = next((index for index, row in enumerate(rows) if row[0] == best["epoch"]), None)
    settings = training["settings"]
    facts = [
        ["variant", best["variant"]],
        ["backbone", best["backbone"]],
        ["FPN and head width", best["feature_size"]],
        ["classes", ", ".join(f"{name} ({label})" for name, label in best["classes"].items())],
        ["image sizes", f"shorter side {best['image_min_side']} px, longer side at most {best['image_max_side']} px"],
        ["starting weights", settings["weights"]],
        ["epochs", f"{epochs} of {training['epochs_requested']} ({training['stopped']})"],
        ["steps per epoch × batch", f"{settings['steps']} × {settings['batch_size']}"],
        ["training time", f"{training['train_seconds']:.0f} s on {training['device'] or 'the default device'}"],
    ]
    return _page(
        "Chosen snapshot",
        f"<p>{html.escape(why_chosen(best, epochs))}</p>",
        _table(None, facts),
        f"<h3>Variants, by {html.escape(best['metric'])} (train.variants)</h3>",
        variants_table(best),
        f"<h3>Every epoch of variant {html.escape(best['variant'])} (from the TensorBoard logs)</h3>",
        _table(["epoch", "training loss", "validation mAP"], rows, chosen),
    )


def training_report(best_json, png_path, html_path):
    """The curves of every variant named in best.json and the page on the chosen snapshot."""
    best = read_json(best_json)
    trainings = {item["variant"]: read_json(item["training_json"]) for item in best["variants"]}
    runs = {variant: training_values(training, list(best["classes"])) for variant, training in trainings.items()}
    plot_training_curves(runs, best, png_path)
    training = trainings[best["variant"]]
    Path(html_path).write_text(model_page(training, best, runs[best["variant"]]))
    log.info("%s", why_chosen(best, training["epochs_completed"]))


# ---------------------------------------------------------------- dataset


def dataset_page(splits, validation):
    classes = splits["classes"]
    by_video = splits["group_by"] == "video"
    header = ["split", *(["videos"] if by_video else []), "images", "images without boxes",
              *(f"boxes {name}" for name in classes), *(f"images with {name}" for name in classes)]
    rows = []
    for name, split in splits["splits"].items():
        rows.append([name, *([split["groups"]] if by_video else []), split["images"], split["negatives"],
                     *(split["boxes"][c] for c in classes), *(split["images_with"][c] for c in classes)])
    checked = (f"{validation['annotation_files']} annotation files checked: {validation['used']} used "
               f"({validation['negatives']} without boxes), {validation['skipped']} skipped for errors, "
               f"{validation['not_yet_labelled']} chosen frames not labelled yet.")
    fractions = ", ".join(f"{name} {value:g}" for name, value in splits["fractions"].items())
    return _page(
        "Dataset",
        f"<p>{html.escape(checked)}</p>",
        f"<p>Split by {html.escape(splits['group_by'])} with seed {splits['seed']} (fractions {html.escape(fractions)}).</p>",
        _table(header, rows),
        _paragraphs(splits["warnings"] + validation["notes"]),
    )


# ---------------------------------------------------------------- results


def nothing_detected(predictions, videos):
    """Whether no box scored the threshold anywhere (and there was something to look at)."""
    looked = sum(item["images_predicted"] for item in predictions) + sum(item["frames_predicted"] for item in videos)
    found = sum(item["images_with_detections"] for item in predictions) + sum(
        item["frames_with_detections"] for item in videos)
    return looked > 0 and found == 0


def nothing_message(predictions, videos):
    thresholds = {item["score_threshold"] for item in predictions + videos}
    return (f"Nothing was detected: no box scored {', '.join(f'{value:g}' for value in sorted(thresholds))} or more "
            "in any image or video. Lower predict.score_threshold to see weaker detections, or train longer "
            "(more epochs or steps).")


def truth_match(event_files, truth_files):
    """How the events of the demo videos cover their per-frame truth (lib.gesture_events.match_events
    summed over the videos), or None without truth files. Truth and events pair up by video name."""
    if not truth_files:
        return None
    truths = {video_id(path): path for path in truth_files}
    pairs = []
    for path in event_files:
        name = Path(path).name.removesuffix(".events.json")
        if name not in truths:
            raise InputError(path, f"no truth file of video {name} among the {len(truths)} given")
        pairs.append((read_truth(truths[name]), path))
    return truth_match_totals(pairs)


def truth_match_line(match):
    share = "–" if match["exactly_one_share"] is None else f"{100 * match['exactly_one_share']:.1f}%"
    return (f"{match['exactly_one']} of {match['appearances']} true gesture appearances ({share}) became exactly one "
            f"event ({match['none']} none, {match['several']} split into several); {match['unmatched_events']} of "
            f"{match['events']} events match no appearance")


def events_line(videos):
    names = videos[0]["classes"]
    counts = {name: sum(item["events"][name] for item in videos) for name in names}
    return (f"Gesture events: {sum(counts.values())} in {len(videos)} videos "
            f"({', '.join(f'{name} {count}' for name, count in counts.items())})")


def metrics_page(metrics, predictions, videos, match=None):
    classes = [item["class"] for item in metrics[0]["classes"]] if metrics else []
    header = ["class", *(f"{item['split']}: AP ({item['boxes']} boxes)" for item in metrics)]
    rows = [[name, *(_ap_cell(item["classes"][index]) for item in metrics)] for index, name in enumerate(classes)]
    rows.append(["mAP", *(_number(item["mAP"], missing="undefined") for item in metrics)])
    rows.append(["mAP weighted by boxes", *(_number(item["weighted_mAP"], missing="undefined") for item in metrics)])
    for key, name in COCO_ROWS.items():
        rows.append([name, *(_number(item.get(key), missing="undefined") for item in metrics)])
    rows.append(["images", *(item["images"] for item in metrics)])
    iou = ", ".join(sorted({f"{item['iou_threshold']:g}" for item in metrics}))
    scores = ", ".join(sorted({f"{item['score_threshold']:g}" for item in metrics}))
    notes = [f"{item['split']}: {note}" for item in metrics for note in item["notes"]]
    parts = [f"<p>Average precision at IoU {iou}, computed by keras-retinanet's evaluation code against the "
             f"dataset's annotations, over detections scoring {scores} or more. The COCO rows are "
             "pycocotools' (mAP@[.5:.95]: AP averaged over the IoU thresholds 0.50, 0.55, ..., 0.95); the "
             "confusion matrices are in the report's Evaluation section.</p>",
             _table(header, rows), _paragraphs(notes)]
    parts += ["<h3>Detections</h3>", _detections_table(predictions, videos)]
    if videos:
        parts.append(f"<p>{html.escape(events_line(videos))}: a class seen on one track in at least "
                     f"{videos[0]['event_settings']['min_frames']} frames, with gaps of up to "
                     f"{videos[0]['event_settings']['max_gap']} frames (results/predictions/videos/*.events.csv)."
                     "</p>")
    if match:
        parts.append(f"<p>Demo truth: {html.escape(truth_match_line(match))}.</p>")
    if nothing_detected(predictions, videos):
        parts.append(_paragraphs([nothing_message(predictions, videos)], "alert"))
    unreadable = [f"{item['split']}: {entry['file']} cannot be read ({entry['reason']}); left out"
                  for item in predictions for entry in item["unreadable"]]
    incomplete = [f"{item['video']}: decoding stopped at frame {item['frames_decoded']} of the "
                  f"{item['frames_declared']} the file declares; annotated up to there" for item in videos
                  if not item["complete"]]
    parts.append(_paragraphs(unreadable + incomplete))
    return _page("Metrics and detections", *parts)


COCO_ROWS = {"mAP_50_95": "mAP@[.5:.95] (COCO)", "AP50": "AP50 (COCO)", "AP75": "AP75 (COCO)"}


def _ap_cell(item):
    if item["average_precision"] is None:
        return "no boxes"
    return f"{item['average_precision']:.3f}"


def _detections_table(predictions, videos):
    names = (predictions or videos)[0]["classes"] if predictions or videos else []
    header = ["predicted", "images or frames", "with detections", *(f"detections {name}" for name in names),
              *(f"events {name}" for name in names if videos)]
    rows = [[f"{item['split']} split", item["images_predicted"], item["images_with_detections"],
             *(item["detections"][name] for name in names), *("–" for name in names if videos)]
            for item in predictions]
    rows += [[f"video {item['video_id']}", item["frames_predicted"], item["frames_with_detections"],
              *(item["detections"][name] for name in names), *(item["events"][name] for name in names)]
             for item in videos]
    return _table(header, rows)


def results_report(metrics_files, prediction_files, video_files, html_path, event_files=(), truth_files=()):
    metrics = [read_json(path) for path in metrics_files]
    predictions = [read_json(path) for path in prediction_files]
    videos = [read_json(path) for path in video_files]
    Path(html_path).write_text(metrics_page(metrics, predictions, videos, truth_match(event_files, truth_files)))
    if nothing_detected(predictions, videos):
        log.warning("%s", nothing_message(predictions, videos))


# ---------------------------------------------------------------- gallery


def gallery_choice(images, count=GALLERY_IMAGES):
    """Up to ``count`` images spread evenly over the split (so over its videos)."""
    if len(images) <= count:
        return list(images)
    return [images[round(index * (len(images) - 1) / (count - 1))] for index in range(count)]


def gallery(detections_json, images_dir, out_path):
    """A contact sheet of annotated images of a split, each titled with its id and detections."""
    predictions = read_json(detections_json)
    chosen = gallery_choice(predictions["images"])
    pyplot = _pyplot()
    columns = max(1, min(GALLERY_COLUMNS, len(chosen)))
    rows = max(1, math.ceil(len(chosen) / columns))
    figure, axes_grid = pyplot.subplots(rows, columns, figsize=(3.4 * columns, 2.9 * rows + 0.6), dpi=110,
                                        squeeze=False)
    for axes in axes_grid.ravel():
        axes.axis("off")
    import matplotlib.image

    for axes, image in zip(axes_grid.ravel(), chosen):
        axes.imshow(matplotlib.image.imread(Path(images_dir) / f"{image['image']}.jpg"))
        found = len(image["detections"])
        axes.set_title(f"{image['image']}: {found} detection{'s' * (found != 1)}", fontsize=9)
    title = (f"{predictions['split']} split: {len(chosen)} of {predictions['images_predicted']} annotated images "
             f"(boxes scoring {predictions['score_threshold']:g} or more)")
    if not chosen:
        title = f"{predictions['split']} split: no images to show"
    elif predictions["images_predicted"] and not predictions["images_with_detections"]:
        title += f"\nNothing detected in any of the {predictions['images_predicted']} images"
    figure.suptitle(title, fontsize=11, color="#b3261e" if "Nothing" in title else "black")
    figure.tight_layout()
    figure.savefig(out_path)
    pyplot.close(figure)


# ---------------------------------------------------------------- summary


def summary_lines(best, training, splits, metrics, predictions, videos, match=None):
    by_split = {item["split"]: item for item in metrics}
    lines = ["Run summary"]
    for split in ("test", "val"):
        if split not in by_split:
            lines.append(f"{split.capitalize()} mAP: not evaluated (add {split} to predict.splits)")
            continue
        item = by_split[split]
        per_class = ", ".join(f"{entry['class']} {_number(entry['average_precision'], missing='no boxes')}"
                              for entry in item["classes"])
        lines.append(f"{split.capitalize()} mAP@{item['iou_threshold']:g}: "
                     f"{_number(item['mAP'], missing='undefined')} ({per_class}; {item['images']} images, "
                     f"{item['boxes']} boxes){_coco_mean(item)}")
    lines.append(f"Model: variant {best['variant']} of {len(best['variants'])}, {best['backbone']}, "
                 f"FPN and heads {best['feature_size']} wide"
                 f"{' (group-normalised heads)' if best.get('head_norm') == 'group' else ''}, images "
                 f"{best['image_min_side']}-{best['image_max_side']} px; epoch {best['epoch']} of "
                 f"{training['epochs_completed']} chosen by {best['metric']} ({best['value']:.4f})")
    lines.append(f"Training: {training['train_seconds']:.0f} s, {training['device'] or 'default device'}")
    counts = ", ".join(f"{name} {split['images']} images" for name, split in splits["splits"].items())
    lines.append(f"Dataset: {counts}")
    for item in predictions:
        lines.append(f"Predictions {item['split']}: {item['images_with_detections']} of {item['images_predicted']} "
                     f"images with detections scoring {item['score_threshold']:g}+ "
                     f"({', '.join(f'{name} {count}' for name, count in item['detections'].items())})")
    if videos:
        with_detections = sum(item["frames_with_detections"] for item in videos)
        frames = sum(item["frames_predicted"] for item in videos)
        lines.append(f"Videos: {len(videos)} annotated, {with_detections} of {frames} frames with detections")
        lines.append(events_line(videos))
    if match:
        lines.append(f"Demo truth: {truth_match_line(match)}")
    if nothing_detected(predictions, videos):
        lines.append(nothing_message(predictions, videos))
    lines.append("Outputs: results/predictions/, results/evaluation/; report: snakemake --report results/report/report.html")
    return lines


def headline(metrics):
    """The line printed at the end of a run."""
    test = next((item for item in metrics if item["split"] == "test"), None)
    if test is None:
        return "Test mAP: not evaluated (add test to predict.splits)"
    score = _number(test["mAP"], "{:.4f}", missing="undefined (" + "; ".join(test["notes"]) + ")")
    return f"Test mAP@{test['iou_threshold']:g}: {score} on {test['images']} test images{_coco_mean(test, '{:.4f}')}"


def _coco_mean(item, form="{:.3f}"):
    """"; mAP@[.5:.95] <value>" where the metrics have it (metrics written before it existed have not)."""
    return f"; mAP@[.5:.95] {_number(item['mAP_50_95'], form, 'undefined')}" if "mAP_50_95" in item else ""


def summary(best_json, splits_json, metrics_files, prediction_files, video_files, out_path, event_files=(),
            truth_files=()):
    best = read_json(best_json)
    metrics = [read_json(path) for path in metrics_files]
    predictions = [read_json(path) for path in prediction_files]
    videos = [read_json(path) for path in video_files]
    lines = summary_lines(best, read_json(best["training_json"]), read_json(splits_json), metrics,
                          predictions, videos, truth_match(event_files, truth_files))
    Path(out_path).write_text("\n".join(lines) + "\n")
    print(headline(metrics))


# ---------------------------------------------------------------- command line


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("report"), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("training", help="training curves and the chosen snapshot")
    training.add_argument("best_json", help="best.json: the choice, and every variant's training.json")
    training.add_argument("--curves", required=True, help="PNG of loss and mAP per epoch")
    training.add_argument("--page", required=True, help="HTML page on the chosen snapshot")
    dataset = commands.add_parser("dataset", help="dataset statistics")
    dataset.add_argument("splits_json")
    dataset.add_argument("validation_json")
    dataset.add_argument("--page", required=True)
    results = commands.add_parser("results", help="metrics table and detections")
    results.add_argument("--metrics", nargs="*", default=[], help="metrics.json of each evaluated split")
    results.add_argument("--predictions", nargs="*", default=[], help="detections.json of each split")
    results.add_argument("--videos", nargs="*", default=[], help="JSON of each annotated video")
    results.add_argument("--page", required=True)
    sheet = commands.add_parser("gallery", help="contact sheet of a split's annotated images")
    sheet.add_argument("detections_json")
    sheet.add_argument("images_dir")
    sheet.add_argument("--out", required=True)
    brief = commands.add_parser("summary", help="summary.txt; prints the test mAP")
    brief.add_argument("best_json", help="best.json: the choice, and the chosen variant's training.json")
    brief.add_argument("splits_json")
    brief.add_argument("--metrics", nargs="*", default=[])
    brief.add_argument("--predictions", nargs="*", default=[])
    brief.add_argument("--videos", nargs="*", default=[])
    brief.add_argument("--out", required=True)
    for command in (results, brief):
        command.add_argument("--events", nargs="*", default=[], help="events JSON of each annotated video")
        command.add_argument("--truths", nargs="*", default=[],
                             help="per-frame truth CSV of each video (the demo's), to match events against")
    args = parser.parse_args(argv)
    if args.command == "training":
        training_report(args.best_json, args.curves, args.page)
    elif args.command == "dataset":
        Path(args.page).write_text(dataset_page(read_json(args.splits_json), read_json(args.validation_json)))
    elif args.command == "results":
        results_report(args.metrics, args.predictions, args.videos, args.page, args.events, args.truths)
    elif args.command == "gallery":
        gallery(args.detections_json, args.images_dir, args.out)
    else:
        summary(args.best_json, args.splits_json, args.metrics, args.predictions, args.videos, args.out,
                args.events, args.truths)


if __name__ == "__main__":
    run(main)
