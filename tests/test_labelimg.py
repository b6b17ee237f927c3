"""Labelling as a person does it: labelImg 1.8.6 opened by ``python -m detflow.labelimg``
in a real X window (Xvfb), driven with xdotool, looked at with screenshots.

The display, xdotool and ImageMagick's ``import`` (screenshots) are installed
with apt-get when missing, together with the system libraries Qt needs, as the
cluster test installs SLURM; the tests skip only where that is impossible.
The screenshot of the labelled image is kept in ``test-artifacts/``.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detflow.dataset import build_dataset
from detflow.lib.data.pascal_voc import read_annotation, write_annotation
from detflow.lib.labelling.labelimg_adapter import ERROR_PREFIX
from helpers.config import DATASET
from helpers.desktop import screenshot
from helpers.media import file_hashes
from helpers.workflow import REPO

ARTIFACTS = REPO / "test-artifacts"
CLASSES = ["grab", "drop"]
WIDTH, HEIGHT = 320, 240
# Per image: the object (an ellipse) as (xmin, ymin, xmax, ymax) in 0-based image pixels.
OBJECTS = {"take_000000": (60, 70, 140, 130), "take_000002": (150, 90, 230, 170), "take_000004": (180, 40, 280, 120)}
BORDER = (255, 0, 255)  # BGR magenta frame around each image, to find the image in a screenshot


def frame_image(box):
    image = np.full((HEIGHT, WIDTH, 3), (60, 120, 60), np.uint8)
    cv2.rectangle(image, (0, 0), (WIDTH - 1, HEIGHT - 1), BORDER, 3)
    xmin, ymin, xmax, ymax = box
    cv2.ellipse(image, ((xmin + xmax) // 2, (ymin + ymax) // 2), ((xmax - xmin) // 2, (ymax - ymin) // 2), 0, 0, 360,
                (40, 180, 240), -1)
    return image


@pytest.fixture
def project(tmp_path):
    """A project after `snakemake labelling`: chosen frames, classes.txt, config with an annotations folder."""
    root = tmp_path / "project"
    images = root / "results" / "labelling" / "images"
    images.mkdir(parents=True)
    for image_id, box in OBJECTS.items():
        cv2.imwrite(str(images / f"{image_id}.jpg"), frame_image(box), [cv2.IMWRITE_JPEG_QUALITY, 95])
    (root / "results" / "labelling" / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["videos"]["dir"], config["annotations"]["dir"] = str(root / "videos"), str(root / "annotations")
    config["classes"] = CLASSES
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


class LabelImg:
    """``python -m detflow.labelimg`` in the project, and what a person does to its window."""

    def __init__(self, project, env, *args):
        self.env = {**os.environ, **env}
        self.log = project / f"label{len(list(project.glob('label*.log')))}.log"
        self.process = subprocess.Popen([sys.executable, "-m", "detflow.labelimg", *args], cwd=project, env=self.env,
                                        stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        self.window = self.xdotool("search", "--sync", "--onlyvisible", "--name", "^labelImg /").split()[0]
        self.xdotool("windowsize", "--sync", self.window, "1200", "900")
        self.focus()

    def xdotool(self, *args):
        return subprocess.run(["xdotool", *args], env=self.env, check=True, capture_output=True, text=True,
                              timeout=60).stdout

    def focus(self, window=None):
        self.xdotool("windowfocus", "--sync", window or self.window)

    def alive(self):
        return self.process.poll() is None

    def title(self):
        return self.xdotool("getwindowname", self.window).strip()

    def key(self, *keys):
        self.xdotool("key", "--delay", "100", *keys)
        time.sleep(0.8)

    def screenshot(self, path):
        return screenshot(self.env, path)

    def on_screen(self, path, colour_mask):
        """Bounding box (left, top, right, bottom) on screen of the largest region ``colour_mask`` picks out
        of a screenshot, once the window has settled (two screenshots agree)."""
        previous = None
        for _ in range(20):
            shot = self.screenshot(path)
            # Closing joins a region's parts where JPEG blurred them; toolbar icons only have specks of colour.
            closed = cv2.dilate(colour_mask(shot).astype(np.uint8), np.ones((7, 7), np.uint8))
            count, _, stats, _ = cv2.connectedComponentsWithStats(closed)
            found = None
            if count > 1:
                x, y, w, h, _ = max(stats[1:], key=lambda stat: stat[2] * stat[3])
                found = (x + 3, y + 3, x + w - 4, y + h - 4)
            if found and found == previous:
                return found
            previous = found
            time.sleep(0.5)
        raise AssertionError(f"the window never settled (see {path})")

    def image_on_screen(self, path):
        """(left, top, scale) of the whole image on screen, from its magenta frame."""
        left, top, right, bottom = self.on_screen(
            path, lambda shot: (shot[:, :, 0] > 200) & (shot[:, :, 1] < 80) & (shot[:, :, 2] > 200))
        scale = (right - left + 1) / WIDTH
        assert abs((bottom - top + 1) / HEIGHT - scale) < 0.02, f"the image is drawn whole and undistorted ({path})"
        return left, top, scale

    def object_on_screen(self, path):
        """(left, top, right, bottom) of the orange object on screen."""
        return self.on_screen(path, lambda shot: (shot[:, :, 0] < 90) & (shot[:, :, 1] > 140) & (shot[:, :, 2] > 200))

    def drag(self, start, end):
        (x1, y1), (x2, y2) = start, end
        self.xdotool("mousemove", "--sync", str(x1), str(y1), "mousedown", "1")
        for step in (0.25, 0.5, 0.75, 1.0):  # a person's drag passes through the points between
            self.xdotool("mousemove", "--sync", str(round(x1 + (x2 - x1) * step)), str(round(y1 + (y2 - y1) * step)))
        self.xdotool("mouseup", "1")
        time.sleep(0.8)

    def visible_windows(self):
        return set(self.xdotool("search", "--onlyvisible", "--name", "").split())

    def dialog(self):
        """The label dialog: labelImg's other visible top-level window."""
        for _ in range(20):
            others = [w for w in self.visible_windows() - {self.window}
                      if self.xdotool("getwindowname", w).strip() == "labelImg"]
            if others:
                return others[0]
            time.sleep(0.3)
        raise AssertionError("the label dialog did not open")

    def wheel(self, button, times, *held):
        for key in held:
            self.xdotool("keydown", key)
        self.xdotool("click", "--repeat", str(times), "--delay", "150", button)
        for key in held:
            self.xdotool("keyup", key)
        time.sleep(1)

    def quit(self):
        self.focus()
        self.key("ctrl+q")
        try:
            code = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        stdout = self.process.stdout.read()
        return code, stdout, self.log.read_text()


def screen_point(placement, x, y):
    left, top, scale = placement
    return round(left + (x + 0.5) * scale), round(top + (y + 0.5) * scale)


def voc_box(path):
    annotation = read_annotation(path)
    assert not annotation.errors, annotation.errors
    return [(item.name, item.box) for item in annotation.objects]


def test_a_person_labels_corrects_drafts_and_accepts_them(project, display, tmp_path):
    """Issue 12, points 1-3: draw, choose a class, save, next image, Ctrl+wheel zoom, wheel scroll,
    then open a draft, review and save it, accept it; the dataset stage takes the lot."""
    ARTIFACTS.mkdir(exist_ok=True)
    annotations = project / "annotations"
    app = LabelImg(project, display)
    assert app.title().endswith("take_000000.jpg [1 / 3]")
    app.key("ctrl+f")  # fit the image to the window
    placement = app.image_on_screen(tmp_path / "fitted.png")
    assert placement[2] > 2, "fitted to a 1200x900 window, the 320x240 image is enlarged"
    app.key("w")
    xmin, ymin, xmax, ymax = OBJECTS["take_000000"]
    app.drag(screen_point(placement, xmin, ymin), screen_point(placement, xmax, ymax))
    assert app.alive(), "drawing a box must not abort labelImg"
    dialog = app.dialog()
    app.focus(dialog)
    app.key("ctrl+a")
    app.xdotool("type", "--delay", "80", "drop")
    app.key("Return")  # the first Return may only close the name completer's pop-up
    if dialog in app.visible_windows():
        app.key("Return")
    assert dialog not in app.visible_windows(), "the class is chosen and the dialog closed"
    app.focus()
    app.key("ctrl+s")
    saved = annotations / "take_000000.xml"
    assert saved.exists(), f"Ctrl+S saves Pascal VOC into annotations.dir ({app.log.read_text()[-2000:]})"
    shot = app.screenshot(ARTIFACTS / "labelimg_labelled.png")
    assert (shot[:, :, 1] > 200).sum() > 100, "the new box is drawn in labelImg's green"

    app.key("d")
    assert app.title().endswith("take_000002.jpg [2 / 3]") and app.alive()
    before = app.object_on_screen(tmp_path / "before_zoom.png")
    app.xdotool("mousemove", "--sync", "500", "450")
    app.wheel("4", 12, "ctrl")  # Ctrl+wheel up: zoom in, until the image is taller than the window
    assert app.alive(), "Ctrl+wheel zoom must not abort labelImg"
    zoomed = app.object_on_screen(tmp_path / "zoomed.png")
    width_before, width_after = before[2] - before[0], zoomed[2] - zoomed[0]
    assert width_after > width_before * 1.05, f"Ctrl+wheel zoomed in ({width_before} -> {width_after} px)"
    app.wheel("5", 4)  # wheel down: scroll
    assert app.alive(), "wheel scrolling must not abort labelImg"
    scrolled = app.object_on_screen(tmp_path / "scrolled.png")
    assert scrolled[1] < zoomed[1], f"the wheel scrolled the zoomed image up ({zoomed[1]} -> {scrolled[1]})"
    code, _, log = app.quit()
    assert code == 0 and ERROR_PREFIX not in log, log[-3000:]

    # The model's drafts: one to review, one for a person's label, one whose image is gone.
    drafts = project / "results" / "drafts"
    drafts.mkdir()
    model_box = {"name": "grab", "xmin": 151, "ymin": 91, "xmax": 231, "ymax": 171}
    write_annotation(drafts / "take_000002.xml", filename="take_000002.jpg", width=WIDTH, height=HEIGHT,
                     objects=[model_box])
    write_annotation(drafts / "take_000000.xml", filename="take_000000.jpg", width=WIDTH, height=HEIGHT,
                     objects=[{**model_box, "name": "grab"}])
    write_annotation(drafts / "gone_000001.xml", filename="gone_000001.jpg", width=WIDTH, height=HEIGHT,
                     objects=[model_box])
    app = LabelImg(project, display, "--drafts")
    # The frame labelled by hand shows the person's box, marked reviewed; its out-of-date draft is kept aside.
    assert app.title().endswith("take_000000.jpg [1 / 3]")
    shot = app.screenshot(ARTIFACTS / "labelimg_drafts_hand_label.png")
    assert (shot[:, :, 1] > 200).sum() > 100, "the person's box is drawn in the drafts view"
    assert (drafts / "superseded" / "take_000000.xml").is_file()
    assert read_annotation(drafts / "take_000000.xml").verified
    app.key("d")
    assert app.title().endswith("take_000002.jpg [2 / 3]")
    app.image_on_screen(tmp_path / "draft.png")
    app.key("space")  # Verify Image: marks the draft reviewed and saves it
    assert app.alive()
    code, stdout, log = app.quit()
    assert code == 0 and ERROR_PREFIX not in log, log[-3000:]
    assert "gone_000001.xml: its image is not in" in log
    assert "detflow label accept" in stdout
    assert 'verified="yes"' in (drafts / "take_000002.xml").read_text()

    person = file_hashes(annotations)
    accepted = subprocess.run([sys.executable, "-m", "detflow.labelimg", "accept"], cwd=project, capture_output=True,
                              text=True, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.splitlines() == [
        f"copied 1 reviewed drafts into {annotations}.", "left 2 in results/drafts:",
        "  1 labelled by hand already (a person's label is never replaced)",
        "  1 image not in the labelling folder", "(--verbose lists the files)"]
    after = file_hashes(annotations)
    assert {name: after[name] for name in person} == person, "a person's label is never replaced"

    voc = build_dataset(annotations, [project / "results" / "labelling" / "images"], tmp_path / "voc",
                        classes=CLASSES, **DATASET)
    assert voc["used"] == 2 and voc["skipped"] == 0
    [(name, drawn)] = voc_box(tmp_path / "voc" / "Annotations" / "take_000000.xml")
    assert name == "drop"
    # VOC's 1-based pixels of the dragged box: the object's edges, within 2 px
    expected = (xmin + 1, ymin + 1, xmax + 1, ymax + 1)
    assert max(abs(a - b) for a, b in zip(drawn, expected)) <= 2, (drawn, expected)
    assert voc_box(tmp_path / "voc" / "Annotations" / "take_000002.xml") == [
        ("grab", tuple(model_box[key] for key in ("xmin", "ymin", "xmax", "ymax")))]


def run_label(project, *args, env=None):
    return subprocess.run([sys.executable, "-m", "detflow.labelimg", *args], cwd=project, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_no_display_is_named_with_ways_to_get_one(project):
    environ = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "detflow.labelimg"], cwd=project, capture_output=True, text=True,
                            timeout=120, env=environ)
    line = one_error_line(result)
    assert line.startswith("error: DISPLAY: is not set") and "ssh -X" in line and "xvfb-run" in line


def test_a_display_nobody_serves_is_named(project):
    line = one_error_line(run_label(project, env={"DISPLAY": ":987"}))
    assert line.startswith("error: DISPLAY: is :987, but no X server listens there")


def test_classes_file_that_disagrees_with_config_is_refused(project, display):
    classes = project / "results" / "labelling" / "classes.txt"
    classes.write_text("drop\ngrab\n")
    line = one_error_line(run_label(project, env=display))
    assert line == (f"error: {classes.relative_to(project)}: lists drop, grab but classes in config.yaml are "
                    "grab, drop (same names, same order); rerun `snakemake --cores all frames_to_label` or give the "
                    "right --classes")


def test_save_folder_that_cannot_be_written_is_refused(project, display):
    user = []
    if os.geteuid() == 0:  # root writes anywhere: run as an ordinary user, as a person would
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root")
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    with tempfile.TemporaryDirectory() as shared:  # a folder the ordinary user can enter, unlike pytest's
        os.chmod(shared, 0o755)
        copy = Path(shutil.copytree(project, Path(shared) / "project"))
        config = yaml.safe_load((copy / "config.yaml").read_text())
        config["annotations"]["dir"] = str(copy / "annotations")
        (copy / "config.yaml").write_text(yaml.safe_dump(config))
        save = copy / "annotations"
        save.mkdir(mode=0o555)
        save.chmod(0o555)
        result = subprocess.run([*user, sys.executable, "-m", "detflow.labelimg"], cwd=copy, capture_output=True,
                                text=True, timeout=120, env={**os.environ, **display, "HOME": shared})
    line = one_error_line(result)
    assert line.startswith(f"error: {save}: save folder is not writable (Permission denied)")


def test_drafts_without_a_drafts_folder_say_how_to_make_them(project, display):
    line = one_error_line(run_label(project, "--drafts", env=display))
    assert line == ("error: results/drafts: no drafts folder; `snakemake --cores all drafts` makes drafts "
                    "with the model")


def test_demo_config_has_no_save_folder_and_says_so(project, display):
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["videos"]["dir"] = config["annotations"]["dir"] = None
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    line = one_error_line(run_label(project, env=display))
    assert line.startswith("error: config.yaml: annotations.dir: is null (the demo labels itself)")


def test_a_zip_export_as_annotations_dir_is_not_a_save_folder(project, display):
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["annotations"]["dir"] = str(project / "cvat_export.zip")
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    line = one_error_line(run_label(project, env=display))
    assert line == (f"error: config.yaml: annotations.dir: is a .zip export ({project / 'cvat_export.zip'}), which "
                    "is only read; labelImg saves into a folder: give --save-dir")


def test_the_drafts_view_shows_a_persons_labels_and_accept_counts_what_it_leaves(project):
    """A frame labelled by hand used to open in the drafts view with no box, as if its label were lost; accept
    printed a line per draft not reviewed yet."""
    from detflow import labelimg

    images, drafts, annotations = (project / "results" / "labelling" / "images", project / "results" / "drafts",
                                   project / "annotations")
    drafts.mkdir()
    annotations.mkdir()
    box = {"name": "drop", "xmin": 61, "ymin": 71, "xmax": 141, "ymax": 131}
    write_annotation(annotations / "take_000000.xml", filename="take_000000.jpg", width=WIDTH, height=HEIGHT,
                     objects=[box])
    write_annotation(annotations / "take_000004.xml", filename="take_000004.jpg", width=WIDTH, height=HEIGHT,
                     objects=[])
    stale = {**box, "name": "grab", "xmax": 120}
    write_annotation(drafts / "take_000000.xml", filename="take_000000.jpg", width=WIDTH, height=HEIGHT,
                     objects=[stale])
    write_annotation(drafts / "take_000002.xml", filename="take_000002.jpg", width=WIDTH, height=HEIGHT,
                     objects=[{**box, "name": "grab"}])
    person = file_hashes(annotations)

    assert labelimg.show_hand_labels(drafts, annotations, images) == 2
    shown = read_annotation(drafts / "take_000000.xml")
    assert shown.verified and [item.name for item in shown.objects] == ["drop"]
    assert [item.name for item in read_annotation(drafts / "superseded" / "take_000000.xml").objects] == ["grab"]
    assert read_annotation(drafts / "take_000004.xml").verified and not read_annotation(drafts / "take_000004.xml").objects
    assert labelimg.show_hand_labels(drafts, annotations, images) == 2  # again: nothing more moves aside
    assert sorted(path.name for path in (drafts / "superseded").iterdir()) == ["take_000000.xml"]

    # The person edits the view of a hand label there: it is left, said so, and the label stays as it was.
    write_annotation(drafts / "take_000000.xml", filename="take_000000.jpg", width=WIDTH, height=HEIGHT,
                     objects=[stale], verified=True)
    copied, left = labelimg.accept(drafts, annotations, images)
    assert copied == [] and file_hashes(annotations) == person
    report = labelimg.accept_report(copied, left, annotations, drafts)
    assert report.splitlines() == [
        f"copied 0 reviewed drafts into {annotations}.", f"left 3 in {drafts}:",
        f"  1 not reviewed yet ({labelimg.VERIFY_HINT})",
        "  1 labelled by hand already (a person's label is never replaced)",
        "  1 copies of a person's label edited in the drafts view (the label stays as it was: change it with "
        "`detflow label`)", "(--verbose lists the files)"]
    verbose = labelimg.accept_report(copied, left, annotations, drafts, verbose=True).splitlines()
    assert "    take_000002.xml" in verbose and "    take_000004.xml" in verbose
