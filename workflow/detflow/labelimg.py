"""Labelling by hand: labelImg on the frames chosen for labelling, and the step
from the model's drafts to a person's labels.

``detflow label`` (``python -m detflow.labelimg``) opens labelImg 1.8.6 (adapted to this Python by
:mod:`detflow.lib.labelling.labelimg_adapter`) on ``results/labelling/images`` with the
classes of ``results/labelling/classes.txt``, saving Pascal VOC files into
``annotations.dir`` of ``config.yaml``; ``--images``, ``--classes`` and
``--save-dir`` override each. Before the window opens it checks what would
otherwise fail inside it: a display, the system libraries Qt needs, the
classes file agreeing with ``classes`` in config, and a save folder that can
be written.

``--drafts`` opens the model's drafts (``results/drafts``, made by
``snakemake drafts`` and ``snakemake next_frames``) instead, so that a person
corrects boxes rather than drawing them. labelImg marks a file reviewed when
the person presses space ("Verify Image", which also saves it). A frame that a
person has labelled already shows that label there, marked reviewed (labelImg's
green background), instead of nothing or an out-of-date draft (which moves to
``results/drafts/superseded/``): nothing looks lost.

``detflow label accept`` copies the reviewed drafts into the annotations
folder, never replacing a file there, and says how many it copied and how many
it left, and why; ``--verbose`` lists the files.
"""
import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from lxml import etree

from detflow.lib.cli import InputError, prog, run
from detflow.lib.config import read_config
from detflow.lib.data.annotation_sources import image_id as annotation_image_id
from detflow.lib.data.annotation_sources import is_zip_source, labelled_image_ids, list_annotations, read_annotations
from detflow.lib.data.pascal_voc import read_annotation, read_annotation_bytes
from detflow.lib.data.videos import frame_id
from detflow.lib.data.voc_tree import class_names
from detflow.lib.files import creating, write_atomically

log = logging.getLogger(__name__)

IMAGES_DIR = Path("results/labelling/images")
CLASSES_FILE = Path("results/labelling/classes.txt")
DRAFTS_DIR = Path("results/drafts")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VERIFY_HINT = "open it with `detflow label --drafts`, correct it and press space (Verify Image)"
HAND_LABELS = "hand_labels.txt"  # in the drafts folder: the frames shown there with a person's label
SUPERSEDED = "superseded"  # drafts folder's subfolder for drafts of frames a person labelled meanwhile
# Why accept leaves a draft, in the order the summary gives them.
NOT_REVIEWED, BY_HAND, EDITED, NO_IMAGE, UNUSABLE = (
    "not reviewed yet", "labelled by hand already (a person's label is never replaced)",
    "copies of a person's label edited in the drafts view (the label stays as it was: change it with "
    "`detflow label`)", "image not in the labelling folder", "cannot be used")


def default_save_dir(config, config_path):
    """``annotations.dir`` of the config, or an InputError saying how to name the folder instead."""
    if config is None:
        raise InputError(config_path, "not found: run from the project folder, or give --save-dir")
    save_dir = config["annotations"]["dir"]
    if save_dir is None:
        raise InputError(f"{config_path}: annotations.dir", "is null (the demo labels itself): set it to your "
                                                             "annotations folder, or give --save-dir")
    if is_zip_source(save_dir):
        raise InputError(f"{config_path}: annotations.dir", f"is a .zip export ({save_dir}), which is only read; "
                                                             "labelImg saves into a folder: give --save-dir")
    return Path(save_dir)


def read_class_names(classes_file):
    """labelImg's predefined classes: one name per line, blank lines ignored, NFC-normalised."""
    try:
        lines = Path(classes_file).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(classes_file, "classes file not found; `snakemake --cores all frames_to_label` writes it") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(classes_file, f"cannot be read: {error}") from None
    return class_names(line.strip() for line in lines if line.strip())


def check_classes(classes_file, config, config_path):
    """Refuse a classes file that disagrees with ``classes`` in config (when config decides the classes)."""
    names = read_class_names(classes_file)
    if not names:
        raise InputError(classes_file, "lists no class")
    if config is None or config["dataset"]["classes_from"] != "config":
        return names
    expected = class_names(config["classes"])
    if names != expected:
        raise InputError(classes_file, f"lists {', '.join(names)} but classes in {config_path} are "
                                       f"{', '.join(expected)} (same names, same order); rerun "
                                       "`snakemake --cores all frames_to_label` or give the right --classes")
    return names


def check_images(images_dir):
    """Number of images in the folder labelImg opens; InputError when there are none."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputError(images_dir, "image folder not found; `snakemake --cores all frames_to_label` fills it")
    count = sum(1 for path in images_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not count:
        raise InputError(images_dir, "holds no images to label")
    return count


def check_writable(folder):
    """Create ``folder`` if needed and prove a file can be written there (permissions, read-only mounts)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "save folder is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise InputError(folder, f"save folder is not writable ({error.strerror or error}); choose another with "
                                 "--save-dir or fix its permissions") from None


def check_display(environ=os.environ):
    """Refuse to start without a display, before Qt would abort; name the missing library when Qt cannot load."""
    if sys.platform.startswith("linux") and not environ.get("QT_QPA_PLATFORM"):
        display = environ.get("DISPLAY", "")
        if not display and not environ.get("WAYLAND_DISPLAY"):
            raise InputError("DISPLAY", "is not set, and labelImg needs a display: run it in your desktop session, "
                                        "over SSH with X forwarding (`ssh -X`), or in a virtual display "
                                        "(`xvfb-run -a detflow label`, seen through a VNC server)")
        local = re.fullmatch(r":(\d+)(\.\d+)?", display)
        if local and not Path(f"/tmp/.X11-unix/X{local.group(1)}").exists():
            raise InputError("DISPLAY", f"is {display}, but no X server listens there (no /tmp/.X11-unix/"
                                        f"X{local.group(1)}); start one or set DISPLAY to yours")
    from detflow.lib.labelling import labelimg_adapter

    missing = labelimg_adapter.missing_qt_library()
    if missing:
        raise InputError("Qt", f"cannot load its X11 plugin ({missing}); install the system libraries, on "
                               f"Debian/Ubuntu: sudo apt-get install {' '.join(labelimg_adapter.QT_SYSTEM_PACKAGES)}")


def image_ids(images_dir):
    """Ids of the images in the labelling folder (none when it does not exist)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        return set()
    return {frame_id(path) for path in images_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES}


def drafts_without_images(drafts_dir, images_dir):
    """Names of the drafts whose image is not in the labelling folder."""
    images = image_ids(images_dir)
    return [path.name for path in draft_files(drafts_dir) if frame_id(path) not in images]


def draft_files(drafts_dir):
    """The drafts (``*.xml``, hidden files left out), sorted."""
    drafts_dir = Path(drafts_dir)
    if not drafts_dir.is_dir():
        raise InputError(drafts_dir, "no drafts folder; `snakemake --cores all drafts` makes drafts with the model")
    return sorted(path for path in drafts_dir.iterdir()
                  if path.suffix.lower() == ".xml" and not path.name.startswith(".") and path.is_file())


def open_labelimg(images_dir, classes_file, save_dir):
    """Run labelImg's window until it is closed; return its exit status."""
    from detflow.lib.labelling import labelimg_adapter

    labelimg_adapter.adapt()
    labelimg_adapter.keep_running_on_errors()
    from labelImg.labelImg import get_main_app
    from libs.constants import FORMAT_PASCALVOC

    app, window = get_main_app(["labelImg", str(images_dir), str(classes_file), str(save_dir)])
    window.set_format(FORMAT_PASCALVOC)  # a YOLO choice remembered in labelImg's settings would not reach the dataset
    return app.exec_()


def label(images_dir, classes_file, save_dir, *, config=None, config_path="config.yaml", drafts=False):
    """Check everything labelImg needs, then open it; return its exit status."""
    count = check_images(images_dir)
    names = check_classes(classes_file, config, config_path)
    if drafts:
        if not draft_files(save_dir):
            raise InputError(save_dir, "holds no drafts; `snakemake --cores all drafts` makes them with the model")
        for name in drafts_without_images(save_dir, images_dir):
            log.warning("draft %s: its image is not in %s (the labelling folder was remade?); labelImg cannot "
                        "show it and `accept` will leave it", Path(save_dir) / name, images_dir)
    check_writable(save_dir)
    check_display()
    log.info("labelImg: %d images in %s, classes %s, saving Pascal VOC into %s", count, images_dir,
             ", ".join(names), save_dir)
    return open_labelimg(images_dir, classes_file, save_dir)


def _boxes(annotation):
    return sorted((item.name or "", item.box or ()) for item in annotation.objects)


def _shown(drafts_dir):
    path = Path(drafts_dir) / HAND_LABELS
    return set(path.read_text().split()) if path.is_file() else set()


def show_hand_labels(drafts_dir, annotations_dir, images_dir):
    """Let every frame of the labelling folder that a person labelled show that label in the drafts folder,
    marked reviewed, in place of an out-of-date draft (moved to ``superseded/``) or an edited copy of the
    label (moved too); return how many frames show a person's label."""
    drafts_dir, images = Path(drafts_dir), image_ids(images_dir)
    if not Path(annotations_dir).exists() or not images:
        return 0
    shown, written = _shown(drafts_dir), set()
    for file, data, problem in read_annotations(list_annotations(annotations_dir)):
        image_id = annotation_image_id(file.name, images)
        label = None if problem or image_id not in images else read_annotation_bytes(data, file.where)
        if label is None or label.errors:
            continue
        target = drafts_dir / f"{image_id}.xml"
        if target.exists() and not (image_id in shown and _boxes(read_annotation(target)) == _boxes(label)):
            (drafts_dir / SUPERSEDED).mkdir(exist_ok=True)
            os.replace(target, drafts_dir / SUPERSEDED / target.name)
            log.info("%s: out of date or edited, now that %s labels %s; moved to %s", target, annotations_dir,
                     image_id, drafts_dir / SUPERSEDED)
        root = etree.fromstring(data)
        root.set("verified", "yes")  # labelImg shows a reviewed file on a green background
        write_atomically(target, etree.tostring(root, encoding="utf-8"))
        written.add(image_id)
    write_atomically(drafts_dir / HAND_LABELS, "".join(f"{image_id}\n" for image_id in sorted(written)))
    return len(written)


def accept(drafts_dir, save_dir, images_dir):
    """Copy reviewed drafts into ``save_dir`` without replacing any file; return (copied, [(name, why)] left),
    ``why`` one of NOT_REVIEWED, BY_HAND, EDITED, NO_IMAGE or UNUSABLE with its detail."""
    check_writable(save_dir)
    labelled = labelled_image_ids(save_dir)
    images, shown = image_ids(images_dir), _shown(drafts_dir)
    copied, left = [], []
    for draft in draft_files(drafts_dir):
        image_id = frame_id(draft)
        annotation = read_annotation(draft)
        if annotation.errors:
            left.append((draft.name, (UNUSABLE, annotation.errors[0].message)))
        elif image_id not in images:
            left.append((draft.name, (NO_IMAGE, "")))
        elif image_id in labelled:
            edited = image_id in shown and _hand_label_edited(annotation, save_dir, image_id)
            left.append((draft.name, (EDITED if edited else BY_HAND, "")))
        elif not annotation.verified:
            left.append((draft.name, (NOT_REVIEWED, "")))
        else:
            try:
                with creating(Path(save_dir) / draft.name) as partial:
                    shutil.copyfile(draft, partial)
            except FileExistsError:
                left.append((draft.name, (BY_HAND, "")))
                continue
            copied.append(draft.name)
    return copied, left


def _hand_label_edited(view, save_dir, image_id):
    """Whether the drafts view of a person's label no longer shows that label's boxes."""
    label = Path(save_dir) / f"{image_id}.xml"
    return label.is_file() and _boxes(read_annotation(label)) != _boxes(view)


def accept_report(copied, left, save_dir, drafts_dir, *, verbose=False):
    """What ``accept`` did, as lines to print: counts, and the files with ``verbose``."""
    lines = [f"copied {len(copied)} reviewed drafts into {save_dir}" + (":" if copied and verbose else ".")]
    lines += [f"  {name}" for name in copied] if verbose else []
    if left:
        lines.append(f"left {len(left)} in {drafts_dir}:")
        for why in (NOT_REVIEWED, BY_HAND, EDITED, NO_IMAGE, UNUSABLE):
            names = [(name, detail) for name, (reason, detail) in left if reason == why]
            if names:
                hint = f" ({VERIFY_HINT})" if why == NOT_REVIEWED else ""
                lines.append(f"  {len(names)} {why}{hint}")
                lines += [f"    {name}" + (f": {detail}" if detail else "") for name, detail in names] if verbose else []
    if (copied or left) and not verbose:
        lines.append("(--verbose lists the files)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("labelimg"), description=__doc__.split("\n\n")[0],
                                     epilog="`accept` copies reviewed drafts into the annotations folder.")
    parser.add_argument("action", nargs="?", choices=("open", "accept"), default="open",
                        help="open labelImg (default), or accept reviewed drafts")
    parser.add_argument("--config", default="config.yaml", help="the workflow's config (default: %(default)s)")
    parser.add_argument("--images", type=Path, default=IMAGES_DIR, help="images to label (default: %(default)s)")
    parser.add_argument("--classes", type=Path, default=CLASSES_FILE, help="classes file (default: %(default)s)")
    parser.add_argument("--save-dir", type=Path, help="where labels are saved (default: annotations.dir of config)")
    parser.add_argument("--drafts", action="store_true", help="open the model's drafts instead, to correct them")
    parser.add_argument("--drafts-dir", type=Path, default=DRAFTS_DIR, help="the drafts (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="accept: list every file copied and left")
    args = parser.parse_args(argv)
    config = read_config(args.config)
    if args.action == "accept":
        save_dir = args.save_dir or default_save_dir(config, args.config)
        copied, left = accept(args.drafts_dir, save_dir, args.images)
        print(accept_report(copied, left, save_dir, args.drafts_dir, verbose=args.verbose))
        return
    if args.drafts:
        draft_files(args.drafts_dir)  # no drafts folder: say how to make one, before anything is written
        labels = args.save_dir or (config or {}).get("annotations", {}).get("dir")
        shown = show_hand_labels(args.drafts_dir, labels, args.images) if labels else 0
        if shown:
            log.info("%d frames labelled by hand show their labels among the drafts, marked reviewed (green)", shown)
        status = label(args.images, args.classes, args.drafts_dir, config=config, config_path=args.config, drafts=True)
        print("Reviewed drafts (space in labelImg) go into your annotations folder with: detflow label accept")
    else:
        save_dir = args.save_dir or default_save_dir(config, args.config)
        status = label(args.images, args.classes, save_dir, config=config, config_path=args.config)
    sys.exit(status)

if __name__ == "__main__":
    run(main)
