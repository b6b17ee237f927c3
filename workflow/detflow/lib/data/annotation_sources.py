"""Where annotations come from: the person's folder of Pascal VOC files, or a
labelling tool's export, folder or ``.zip``, read where it lies.

``annotations.dir`` may be:

- a folder of ``*.xml`` files at its top level: labelImg saves them so, and
  AnyLabeling's Pascal VOC export writes them so;
- an unpacked export, a folder with no XML at its top level and the XML files
  under ``Annotations/`` (searched recursively: CVAT keeps the folders of the
  uploaded images there);
- the export's ``.zip`` itself (CVAT's "PASCAL VOC 1.1", Label Studio's "Pascal
  VOC XML"): its members are read in memory, never extracted. The XML members
  under a folder named ``Annotations`` are the annotations; in a zip without
  one, every XML member is.

A source is only ever read. Images inside an export are not used: every
annotation is matched with the extracted frames by name.

Hygiene, so that what a file manager or a zip tool adds is not taken for
annotations (each ignored entry is reported with its reason):

- names starting with ``.`` are ignored: macOS's AppleDouble ``._x.xml`` (not
  an annotation of ``x``), ``.DS_Store``, editors' hidden files; so are macOS's
  ``__MACOSX/`` folder in zips and zip members whose names are absolute or
  hold ``..``;
- a zip member is read only up to the size allowed for one annotation file,
  and an encrypted member is refused with a reason;
- a place holding YOLO label files (``class cx cy w h`` lines in ``.txt``
  files; labelImg's ``classes.txt`` does not count) and no XML is refused with
  a note on how to get Pascal VOC instead.

Image ids: a file ``x.xml`` belongs to the image with id ``x`` (the safe-name
rule of video ids). Label Studio's Pascal VOC export prefixes names with 8 hex
digits: an uploaded file with its upload prefix and a dash
(``1a2b3c4d-demo_00_000010.xml`` for the frame ``demo_00_000010.jpg``), a
file it serves from disk with part of the URL's MD5 and two underscores
(``30bafa86__demo_00_000010.xml``). The prefix is dropped only where the
prefixed name is not an image id and the rest of the name is: a frame may
itself be called ``deadbeef-take_000004.jpg``, and then its own name wins.
"""
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from detflow.lib.cli import InputError
from detflow.lib.data.pascal_voc import MAX_ANNOTATION_BYTES, Problem
from detflow.lib.data.videos import frame_id

ANNOTATIONS_FOLDER = "annotations"  # compared case-insensitively: VOC trees call it Annotations
MACOS_ZIP_FOLDER = "__MACOSX"
# Label Studio names an upload str(uuid.uuid4())[0:8] + "-" + the file's name, and its VOC export
# names a served file md5(url)[:8] + "__" + the file's name.
_LABEL_STUDIO_PREFIX = re.compile(r"[0-9a-f]{8}(?:-|__)(.+)")
_YOLO_LINE = re.compile(rb"\s*\d+(\s+[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?){4,}\s*")
_YOLO_FILES_CHECKED = 20
_YOLO_BYTES_CHECKED = 4096
YOLO_HINT = ("this workflow reads Pascal VOC XML. In labelImg, click the format button in the left toolbar (or "
             "press Ctrl+Y) until it shows PascalVOC, then save each image again; in other tools, export as "
             "Pascal VOC")


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation file of a source: ``member`` is its path inside the folder or the zip,
    ``where`` names it in reports (the file's path; for a zip, ``export.zip/Annotations/x.xml``)."""

    where: str
    member: str

    @property
    def name(self):
        """The file's own name, NFC-normalised (macOS may store names decomposed)."""
        return _base_name(self.member)


@dataclass
class Listing:
    """The annotation files of a source and the entries ignored in it, as (where, why)."""

    source: Path
    is_zip: bool
    files: list = field(default_factory=list)
    ignored: list = field(default_factory=list)


def is_zip_source(source):
    """Whether a source is named as a zip export (by its suffix, so even before it exists)."""
    return Path(source).suffix.lower() == ".zip"


def _hidden(name):
    return name.startswith(".")


def _hidden_reason(name):
    if name.startswith("._"):
        return "macOS metadata (an AppleDouble file), not an annotation: names starting with '.' are ignored"
    return "hidden file (its name starts with '.'), ignored"


def _is_xml(name):
    return name.lower().endswith(".xml")


def list_annotations(source):
    """The annotation files of a folder or zip (sorted by their path inside it), hygiene applied.

    Raises InputError when the source is missing or unreadable, or holds YOLO
    labels and no XML. An empty list is for the caller to judge.
    """
    source = Path(source)
    if is_zip_source(source) and source.is_file():
        return _list_zip(source)
    if not source.exists():
        raise InputError(source, "annotations folder or .zip not found (set annotations.dir in config.yaml)")
    if not source.is_dir():
        raise InputError(source, "is a file but not a .zip: annotations.dir is a folder of Pascal VOC XML files "
                                 "or a tool's .zip export")
    return _list_folder(source)


def _scan(directory, listing, recursive):
    """XML files of ``directory`` (and its subfolders when ``recursive``), hidden entries noted."""
    found = []
    for root, folders, names in os.walk(directory):
        for name in sorted(folders + names):
            if _hidden(name):
                listing.ignored.append((str(Path(root) / name), _hidden_reason(name)))
        folders[:] = sorted(name for name in folders if not _hidden(name)) if recursive else []
        for name in names:
            path = Path(root) / name
            if not _hidden(name) and _is_xml(name) and path.is_file():
                found.append(AnnotationFile(str(path), path.relative_to(listing.source).as_posix()))
    return found


def _list_folder(source):
    listing = Listing(source, is_zip=False)
    listing.files = _scan(source, listing, recursive=False)
    if not listing.files:
        unpacked = [path for path in source.iterdir() if path.name.lower() == ANNOTATIONS_FOLDER and path.is_dir()]
        for folder in unpacked:
            listing.files += _scan(folder, listing, recursive=True)
    listing.files.sort(key=lambda file: file.member)
    if not listing.files:
        _refuse_yolo(source, _folder_texts(source))
    return listing


def _folder_texts(source):
    """(where, first bytes) of the folder's .txt files, for recognising YOLO labels."""
    for root, folders, names in os.walk(source):
        folders[:] = sorted(name for name in folders if not _hidden(name))
        for name in sorted(names):
            if _is_label_text(name):
                try:
                    with open(Path(root) / name, "rb") as stream:
                        yield str(Path(root) / name), stream.read(_YOLO_BYTES_CHECKED)
                except OSError:
                    continue


def _is_label_text(name):
    return name.lower().endswith(".txt") and name.lower() != "classes.txt" and not _hidden(name)


def _unsafe(name):
    """Why a zip member's name is not used, or None: absolute names, '..', hidden names."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"[A-Za-z]:", name) or ".." in path.parts:
        return "the member's name is absolute or leads out of the zip ('..'); ignored"
    if any(_hidden(part) for part in path.parts):
        return _hidden_reason(next(part for part in path.parts if _hidden(part)))
    return None


def _open_zip(source):
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(source, f"is not a readable .zip file ({error}); export it again, or unpack it and set "
                                 "annotations.dir to the folder")


def _list_zip(source):
    listing = Listing(source, is_zip=True)
    with _open_zip(source) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
    candidates, macos = [], 0
    for info in members:
        reason = _unsafe(info.filename)
        if MACOS_ZIP_FOLDER in PurePosixPath(info.filename).parts:
            macos += 1
        elif reason is not None:
            listing.ignored.append((f"{source}/{info.filename}", reason))
        elif _is_xml(info.filename):
            candidates.append(info.filename)
    if macos:
        files = f"{macos} file" + ("s" if macos > 1 else "")
        listing.ignored.append((f"{source}/{MACOS_ZIP_FOLDER}/", f"macOS metadata folder of the zip ({files}), ignored"))
    under_annotations = [name for name in candidates
                         if ANNOTATIONS_FOLDER in (part.lower() for part in PurePosixPath(name).parts[:-1])]
    chosen = under_annotations or candidates
    listing.files = sorted((AnnotationFile(f"{source}/{name}", name) for name in chosen), key=lambda file: file.member)
    if not listing.files:
        _refuse_yolo(source, _zip_texts(source, members))
    return listing


def _zip_texts(source, members):
    with _open_zip(source) as archive:
        for info in members:
            name = PurePosixPath(info.filename)
            if _unsafe(info.filename) is None and MACOS_ZIP_FOLDER not in name.parts and _is_label_text(name.name) \
                    and not info.flag_bits & 0x1:
                try:
                    with archive.open(info) as stream:
                        yield f"{source}/{info.filename}", stream.read(_YOLO_BYTES_CHECKED)
                except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError):
                    continue


def _looks_like_yolo(data):
    lines = data.splitlines()
    if len(data) == _YOLO_BYTES_CHECKED:
        lines = lines[:-1]  # the last line may be cut
    lines = [line for line in lines if line.strip()]
    return bool(lines) and all(_YOLO_LINE.fullmatch(line) for line in lines)


def _refuse_yolo(source, texts):
    """InputError when some of the first .txt files hold YOLO label lines."""
    for number, (where, data) in enumerate(texts):
        if number >= _YOLO_FILES_CHECKED:
            return
        if _looks_like_yolo(data):
            raise InputError(source, f"holds YOLO label files (e.g. {where}: lines of 'class cx cy w h'), "
                                     f"not Pascal VOC XML files; {YOLO_HINT}")


def read_annotations(listing, *, max_bytes=MAX_ANNOTATION_BYTES):
    """Yield (file, its bytes or None, the Problem that kept them from being read or None) for each
    file of ``listing``; a zip is opened once. At most ``max_bytes + 1`` bytes are read of a file,
    so that the reader sees when it is too large."""
    if not listing.is_zip:
        for file in listing.files:
            try:
                with open(file.where, "rb") as stream:
                    yield file, stream.read(max_bytes + 1), None
            except OSError as error:
                yield file, None, Problem("unreadable", f"cannot be read: {error.strerror or error}")
        return
    with _open_zip(listing.source) as archive:
        for file in listing.files:
            yield file, *_read_member(archive, file.member, max_bytes)


def _read_member(archive, name, max_bytes):
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        return None, Problem("encrypted", "is encrypted (password-protected) in the zip; export it again without "
                                          "a password")
    if info.file_size > max_bytes:
        return None, Problem("too_large", f"is larger than the {max_bytes // 1024} KiB allowed for an annotation file")
    try:
        with archive.open(info) as stream:
            return stream.read(max_bytes + 1), None
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as error:
        return None, Problem("unreadable", f"cannot be read from the zip: {error}")


def image_id(name, image_ids=None):
    """The id of the image a file name stands for (an annotation's, or a ``<filename>``).

    ``image_ids``: the ids of the images that exist. The name's own safe id
    when it is one of them (or none are given); else the safe id of the name
    without a Label Studio prefix, when the name has one and that id exists;
    else the name's own id, which then matches no image.
    """
    name = _base_name(name)
    own = frame_id(name)
    if image_ids is None or own in image_ids:
        return own
    unprefixed = _unprefixed(name)
    return unprefixed if unprefixed in image_ids else own


def _base_name(name):
    return unicodedata.normalize("NFC", PurePosixPath(str(name).replace("\\", "/")).name)


def _unprefixed(name):
    """The safe id of a file name without its Label Studio prefix, or None when it has none."""
    match = _LABEL_STUDIO_PREFIX.fullmatch(_base_name(name))
    return frame_id(match[1]) if match else None


def labelled_image_ids(source, image_ids=None):
    """Ids of the images that have an annotation file in ``source`` (folder or zip); an empty set
    when the source does not exist yet.

    With ``image_ids`` (the ids of the images that exist), a name is matched as
    the dataset stage matches it. Without, a name with a Label Studio prefix
    counts for both its own id and the id without the prefix.
    """
    source = Path(source)
    if not source.exists():
        return set()
    ids = set()
    for file in list_annotations(source).files:
        ids.add(image_id(file.name, image_ids))
        if image_ids is None and (unprefixed := _unprefixed(file.name)):
            ids.add(unprefixed)
    return ids
