"""Ground truth of a gesture video: one CSV row per visible hand per frame,
``frame_index,class,xmin,ymin,xmax,ymax``, in 0-based pixel indices of the
first and last pixel of the hand (inclusive). The demo writes it as it draws
its videos; the demo's labeller and any comparison with the truth read it."""
import csv

TRUTH_COLUMNS = ("frame_index", "class", "xmin", "ymin", "xmax", "ymax")


def read_truth(path):
    """Ground-truth boxes of a demo video: {frame_index: [(class, xmin, ymin, xmax, ymax)]}."""
    boxes = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            box = tuple(int(row[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
            boxes.setdefault(int(row["frame_index"]), []).append((row["class"], *box))
    return boxes
