"""Pascal VOC annotation files: writing them as labelImg does, and reading safely
what labelImg and other tools (AnyLabeling, CVAT, Label Studio) write.

Writing follows labelImg's ``PascalVocWriter``: the same elements in the same
order, tab indentation, UTF-8 without an XML declaration, integer coordinates.
Coordinates are Pascal VOC's 1-based pixel coordinates: a box touching the
left edge has ``xmin`` 1, one touching the right edge ``xmax`` = width
(keras-retinanet subtracts 1 when it reads them, and drops boxes whose
``xmin - 1`` is negative).

Reading never trusts the file. lxml is set up with no DTD loading, no entity
resolution, no network and no huge trees, and each file is capped in size. A
document with a DOCTYPE (the only place entities can be declared: external
entities, "billion laughs") is refused with a reason, never expanded. Instead
of raising at the first oddity, :func:`read_annotation` returns what it could
read plus a list of :class:`Problem` (file level or per object), so that a
validator can report every problem of every file in one go. The bytes may
come from a file (:func:`read_annotation`) or from anywhere else, such as a
zip member (:func:`read_annotation_bytes`).

Other tools' extra elements (``<occluded>``, ``<attributes>``, ``<part>``,
``<owner>``...) are ignored: only ``<filename>``, ``<size>`` and each
``<object>``'s own ``<name>``, ``<bndbox>``, ``<truncated>`` and ``<difficult>``
are read. Class names are NFC-normalised, so that a name typed with a
combining accent (``la\u0302cher``) is the same class as ``lâcher``.
"""
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

MAX_ANNOTATION_BYTES = 1 << 20  # labelImg files are a few KB; 1 MiB holds thousands of boxes
ERROR = "error"  # the file cannot be used as it is
WARNING = "warning"  # something was filled in or fixed; the file is usable
COORDINATES = ("xmin", "ymin", "xmax", "ymax")
_INTEGER = re.compile(r"[+-]?\d+")
# A DOCTYPE in any of the encodings a document can start in without a declaration.
_DOCTYPE_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)
_DOCTYPE_REASON = (
    "contains a DOCTYPE or ENTITY declaration; these are refused for safety, never expanded "
    "(external entities, 'billion laughs'), and labelImg never writes them"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an annotation file; ``object_index`` counts ``<object>`` elements from 1."""

    code: str
    message: str
    severity: str = ERROR
    object_index: int | None = None


@dataclass
class VocObject:
    """One ``<object>``; ``box`` is None when its coordinates could not be read."""

    index: int
    name: str | None
    box: tuple[int, int, int, int] | None
    truncated: int = 0
    difficult: int = 0

    def as_dict(self):
        """The object in the form :func:`write_annotation` takes."""
        xmin, ymin, xmax, ymax = self.box
        return {"name": self.name, "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
                "truncated": self.truncated, "difficult": self.difficult}


@dataclass
class Annotation:
    """What could be read from one annotation file, and what is wrong with it."""

    path: Path | str
    filename: str | None = None
    width: int | None = None
    height: int | None = None
    depth: int | None = None
    objects: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    coordinates: int = 0  # coordinates read as numbers, integer or not
    rounded: list = field(default_factory=list)  # (object index, tag, text, rounded value) of each decimal coordinate
    verified: bool = False  # labelImg's "Verify Image" mark: a person has reviewed the file

    @property
    def errors(self):
        return [problem for problem in self.problems if problem.severity == ERROR]


def _safe_parser():
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


_PARSER = _safe_parser()  # lxml parsers are reusable within one thread; the stages are single-threaded


def _parse(data):
    """Parse annotation bytes safely: (root element, None) or (None, the Problem that stopped it)."""
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        return None, Problem("doctype", _DOCTYPE_REASON)
    if not data.strip():
        return None, Problem("not_well_formed", "the file is empty")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        return None, Problem("not_well_formed", f"not well-formed XML: {error.msg or error}")
    if root.getroottree().docinfo.doctype:  # a DOCTYPE in an encoding the byte scan does not know
        return None, Problem("doctype", _DOCTYPE_REASON)
    return root, None


def _text(element, tag):
    text = element.findtext(tag)
    return text.strip() if text is not None else None


def _read_size(root, problems):
    size = root.find("size")
    if size is None:
        problems.append(Problem("size_missing", "<size> is missing, so the boxes cannot be checked against the image"))
        return None, None, None
    values = []
    for tag in ("width", "height", "depth"):
        text = _text(size, tag)
        if text is None or not _INTEGER.fullmatch(text) or int(text) <= 0:
            if tag != "depth":
                shown = "missing" if text is None else f"{text!r}, not a positive integer"
                problems.append(Problem("size_invalid", f"<size><{tag}> is {shown}"))
            values.append(None)
        else:
            values.append(int(text))
    return tuple(values)


def _read_coordinate(bndbox, tag, index, annotation):
    problems = annotation.problems
    text = _text(bndbox, tag)
    if text is None or text == "":
        problems.append(Problem("coordinate_invalid", f"<bndbox><{tag}> is missing", ERROR, index))
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(Problem("coordinate_invalid", f"<{tag}> is {text!r}, not a number", ERROR, index))
        return None
    rounded = round(value)
    annotation.rounded.append((index, tag, text, rounded))
    problems.append(Problem(
        "coordinate_not_integer",
        f"<{tag}> is {text!r}, not an integer (labelImg writes integers); rounded to {rounded}",
        WARNING, index,
    ))
    return rounded


def _read_flag(element, tag, index, problems):
    text = _text(element, tag)
    if text is None or text == "":
        problems.append(Problem(f"{tag}_missing", f"<{tag}> is missing; filled with 0", WARNING, index))
        return 0
    if text in ("0", "1"):
        return int(text)
    problems.append(Problem(f"{tag}_invalid", f"<{tag}> is {text!r}; expected 0 or 1", ERROR, index))
    return 0


def _read_object(element, index, annotation):
    problems = annotation.problems
    name = _text(element, "name")
    name = unicodedata.normalize("NFC", name) if name else name
    if not name:
        problems.append(Problem("name_missing", "<name> (the class) is missing or empty", ERROR, index))
        name = None
    bndbox = element.find("bndbox")
    box = None
    if bndbox is None:
        problems.append(Problem("coordinate_invalid", "<bndbox> is missing", ERROR, index))
    else:
        coordinates = [_read_coordinate(bndbox, tag, index, annotation) for tag in COORDINATES]
        annotation.coordinates += sum(value is not None for value in coordinates)
        if None not in coordinates:
            box = tuple(coordinates)
    truncated = _read_flag(element, "truncated", index, problems)
    difficult = _read_flag(element, "difficult", index, problems)
    return VocObject(index, name, box, truncated, difficult)


def read_annotation(path, *, max_bytes=MAX_ANNOTATION_BYTES):
    """Read one Pascal VOC file into an :class:`Annotation`, collecting its problems."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as error:
        return Annotation(path, problems=[Problem("unreadable", f"cannot be read: {error.strerror or error}")])
    return read_annotation_bytes(data, path, max_bytes=max_bytes)


def read_annotation_bytes(data, where, *, max_bytes=MAX_ANNOTATION_BYTES):
    """Read the bytes of one Pascal VOC file (``where``: the file they came from, for reports).

    ``<path>`` and ``<folder>`` are not read: labelImg and AnyLabeling write
    the labeller's absolute path, which means nothing on another machine.
    """
    annotation = Annotation(where)
    problems = annotation.problems
    if len(data) > max_bytes:
        problems.append(Problem("too_large", f"is larger than the {max_bytes // 1024} KiB allowed for an annotation file"))
        return annotation
    root, problem = _parse(data)
    if root is None:
        problems.append(problem)
        return annotation
    if root.tag != "annotation":
        problems.append(Problem("not_annotation", f"the root element is <{root.tag}>, not <annotation>"))
        return annotation
    annotation.filename = _text(root, "filename") or None
    annotation.verified = root.get("verified") == "yes"
    annotation.width, annotation.height, annotation.depth = _read_size(root, problems)
    annotation.objects = [_read_object(element, index, annotation)
                          for index, element in enumerate(root.iterfind("object"), 1)]
    return annotation


def condensed_problems(annotation):
    """The annotation's problems, with one file-level warning instead of one per coordinate when
    every coordinate is a decimal number.

    CVAT writes every coordinate so (``12.34``, ``40.0``): a warning for each
    would put four lines per box into the report and bury the problems that
    need a person. A file where only some coordinates are decimals keeps a
    warning per coordinate: someone edited those boxes by hand.
    """
    rounded = annotation.rounded
    if len(rounded) < 2 or len(rounded) != annotation.coordinates:
        return list(annotation.problems)
    index, tag, text, value = rounded[0]
    note = Problem("coordinate_not_integer",
                   f"all {len(rounded)} box coordinates are decimal numbers (as CVAT writes them; labelImg writes "
                   f"integers); each was rounded to the nearest integer (object {index}: <{tag}> {text!r} to {value})",
                   WARNING)
    kept = [problem for problem in annotation.problems if problem.code != "coordinate_not_integer"]
    return [note, *kept]


def _sub(parent, tag, text=None):
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def _voc_coordinate(value, size):
    """Rounded to an integer and kept within 1..size, as labelImg does."""
    return min(max(int(round(float(value))), 1), size)


def write_annotation(path, *, filename, width, height, objects, depth=3, folder="images", image_path=None,
                     verified=False):
    """Write a labelImg-style Pascal VOC file for one image.

    ``objects``: dicts with ``name``, ``xmin``, ``ymin``, ``xmax``, ``ymax``
    (1-based VOC pixel coordinates; rounded to integers and kept within the
    image, as labelImg does) and optionally ``truncated`` and ``difficult``
    (0 when absent). ``image_path`` becomes ``<path>`` (left out when None);
    ``verified`` is labelImg's mark of a file a person has reviewed.
    Raises ValueError for a box that is empty once inside the image.
    """
    width, height = int(width), int(height)
    root = etree.Element("annotation", verified="yes") if verified else etree.Element("annotation")
    _sub(root, "folder", folder)
    _sub(root, "filename", filename)
    if image_path is not None:
        _sub(root, "path", image_path)
    _sub(_sub(root, "source"), "database", "Unknown")
    size = _sub(root, "size")
    _sub(size, "width", width)
    _sub(size, "height", height)
    _sub(size, "depth", int(depth))
    _sub(root, "segmented", 0)
    for item in objects:
        xmin, xmax = (_voc_coordinate(item[key], width) for key in ("xmin", "xmax"))
        ymin, ymax = (_voc_coordinate(item[key], height) for key in ("ymin", "ymax"))
        if xmax <= xmin or ymax <= ymin:
            raise ValueError(f"{path}: box {item} of {filename} is empty inside the {width}x{height} image")
        element = _sub(root, "object")
        _sub(element, "name", item["name"])
        _sub(element, "pose", "Unspecified")
        _sub(element, "truncated", int(item.get("truncated", 0)))
        _sub(element, "difficult", int(item.get("difficult", 0)))
        bndbox = _sub(element, "bndbox")
        for tag, value in zip(COORDINATES, (xmin, ymin, xmax, ymax)):
            _sub(bndbox, tag, value)
    etree.indent(root, space="\t")
    Path(path).write_bytes(etree.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")
