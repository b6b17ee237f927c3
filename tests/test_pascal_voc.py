"""Pascal VOC I/O: labelImg-identical writing, and reading that refuses unsafe documents."""
import time
import zipfile

import pytest
from lxml import etree

from detflow.lib.data.pascal_voc import ERROR, WARNING, read_annotation, write_annotation

OBJECT = "<object><name>{name}</name><pose>Unspecified</pose>{flags}<bndbox>{box}</bndbox></object>"
FLAGS = "<truncated>0</truncated><difficult>0</difficult>"


def box_xml(xmin="10", ymin="20", xmax="110", ymax="120"):
    return f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"


def annotation_xml(*objects, size="<size><width>320</width><height>240</height><depth>3</depth></size>"):
    return f"<annotation><folder>x</folder><filename>a.jpg</filename>{size}{''.join(objects)}</annotation>"


def write(tmp_path, content, name="a.xml"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def codes(annotation, severity=None):
    return [(p.code, p.object_index) for p in annotation.problems if severity in (None, p.severity)]


def test_writer_reproduces_labelimg_byte_for_byte(plums, tmp_path):
    """A plums file written by labelImg on someone else's machine, read and written again, is unchanged."""
    with zipfile.ZipFile(plums / "PlumsVOC.zip") as archive:
        original = archive.read("PlumsVOC/Annotations/Batch1_0001.xml")
    source = write(tmp_path, original, "Batch1_0001.xml")
    annotation = read_annotation(source)
    assert annotation.problems == []
    assert (annotation.filename, annotation.width, annotation.height, annotation.depth) == ("Batch1_0001.jpg", 640, 480, 3)
    path_text = etree.fromstring(original).findtext("path")
    assert path_text.startswith("/home/")
    write_annotation(tmp_path / "again.xml", filename=annotation.filename, width=640, height=480,
                     objects=[o.as_dict() for o in annotation.objects], folder="JPEGImages", image_path=path_text)
    assert (tmp_path / "again.xml").read_bytes() == original


def test_writer_element_order_and_defaults(tmp_path):
    path = tmp_path / "f.xml"
    write_annotation(path, filename="f.jpg", width=320, height=240,
                     objects=[{"name": "grab", "xmin": 5, "ymin": 6, "xmax": 50, "ymax": 60},
                              {"name": "drop", "xmin": 1, "ymin": 1, "xmax": 320, "ymax": 240, "truncated": 1, "difficult": 1}])
    root = etree.fromstring(path.read_bytes())
    assert [child.tag for child in root] == ["folder", "filename", "source", "size", "segmented", "object", "object"]
    assert root.findtext("folder") == "images" and root.find("path") is None
    first, second = root.findall("object")
    assert [child.tag for child in first] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert [child.tag for child in first.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    assert (first.findtext("truncated"), first.findtext("difficult")) == ("0", "0")
    assert (second.findtext("truncated"), second.findtext("difficult")) == ("1", "1")
    assert not path.read_bytes().startswith(b"<?xml")  # labelImg writes no declaration
    assert b"\n\t<folder>" in path.read_bytes()


def test_writer_rounds_and_keeps_boxes_inside_like_labelimg(tmp_path):
    path = tmp_path / "f.xml"
    write_annotation(path, filename="f.jpg", width=100, height=80,
                     objects=[{"name": "grab", "xmin": 0, "ymin": 2.6, "xmax": 140.2, "ymax": 40.4}])
    annotation = read_annotation(path)
    assert annotation.problems == []
    assert annotation.objects[0].box == (1, 3, 100, 40)
    with pytest.raises(ValueError, match="empty"):
        write_annotation(path, filename="f.jpg", width=100, height=80,
                         objects=[{"name": "grab", "xmin": 120, "ymin": 2, "xmax": 140, "ymax": 40}])


def test_round_trip_keeps_non_ascii_class_names(tmp_path):
    path = tmp_path / "f.xml"
    write_annotation(path, filename="f.jpg", width=64, height=64,
                     objects=[{"name": "Faust-ä", "xmin": 2, "ymin": 2, "xmax": 30, "ymax": 30}])
    assert read_annotation(path).objects[0].name == "Faust-ä"


def test_clean_file_and_negative_have_no_problems(tmp_path):
    annotation = read_annotation(write(tmp_path, annotation_xml(OBJECT.format(name="grab", flags=FLAGS, box=box_xml()))))
    assert annotation.problems == []
    assert annotation.objects[0].box == (10, 20, 110, 120) and annotation.objects[0].name == "grab"
    negative = read_annotation(write(tmp_path, annotation_xml(), "neg.xml"))
    assert negative.problems == [] and negative.objects == []


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE annotation [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n' for i in range(1, 10))
    + ']>\n<annotation><filename>&lol9;</filename></annotation>'
)


@pytest.mark.parametrize("document", [
    BILLION_LAUGHS,
    '<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file://{secret}">]><annotation><filename>&secret;</filename></annotation>',
    '<!DOCTYPE annotation SYSTEM "{secret}"><annotation><filename>&secret;</filename></annotation>',
    '<!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd"><annotation/>',
], ids=["billion-laughs", "external-entity", "external-dtd", "network-dtd"])
def test_doctype_and_entities_are_refused_never_expanded(tmp_path, document):
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY secret "TOP-SECRET">')
    path = write(tmp_path, document.replace("{secret}", str(secret)))
    started = time.perf_counter()
    annotation = read_annotation(path)
    assert time.perf_counter() - started < 1
    assert codes(annotation) == [("doctype", None)]
    assert "refused" in annotation.problems[0].message and "never expanded" in annotation.problems[0].message
    assert annotation.filename is None and annotation.objects == []


def test_doctype_in_utf16_is_refused(tmp_path):
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>'
    annotation = read_annotation(write(tmp_path, document.encode("utf-16")))
    assert codes(annotation) == [("doctype", None)]


def test_size_cap(tmp_path):
    padding = "<object><name>grab</name></object>" * 40
    path = write(tmp_path, annotation_xml(padding))
    assert codes(read_annotation(path, max_bytes=1024)) == [("too_large", None)]
    assert "1 KiB" in read_annotation(path, max_bytes=1024).problems[0].message
    assert ("too_large", None) not in codes(read_annotation(path))


@pytest.mark.parametrize("content, reason", [
    ("<annotation><filename>a.jpg</filename>", "not well-formed"),
    ("", "empty"),
    ("<annotation>&undefined;</annotation>", "not well-formed"),
    ('<?xml version="1.0" encoding="klingon"?><annotation/>', "not well-formed"),
    ('<?xml version="1.0" encoding="UTF-8"?><annotation><filename>caf\xe9</filename></annotation>'.encode("latin-1"), "not well-formed"),
], ids=["truncated", "empty", "undefined-entity", "unknown-encoding", "latin1-bytes-declared-utf8"])
def test_not_well_formed(tmp_path, content, reason):
    annotation = read_annotation(write(tmp_path, content))
    assert codes(annotation) == [("not_well_formed", None)]
    assert reason in annotation.problems[0].message


def test_wrong_root(tmp_path):
    annotation = read_annotation(write(tmp_path, "<html><body/></html>"))
    assert codes(annotation) == [("not_annotation", None)]
    assert "<html>" in annotation.problems[0].message


def test_bom_and_declared_encodings_are_read_correctly(tmp_path):
    body = annotation_xml(OBJECT.format(name="café", flags=FLAGS, box=box_xml()))
    with_bom = read_annotation(write(tmp_path, b"\xef\xbb\xbf" + body.encode("utf-8"), "bom.xml"))
    latin1 = read_annotation(write(tmp_path, ('<?xml version="1.0" encoding="ISO-8859-1"?>' + body).encode("latin-1"), "l1.xml"))
    utf16 = read_annotation(write(tmp_path, ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16"), "u16.xml"))
    for annotation in (with_bom, latin1, utf16):
        assert annotation.problems == []
        assert annotation.objects[0].name == "café" and annotation.objects[0].box == (10, 20, 110, 120)


def test_coordinates(tmp_path):
    annotation = read_annotation(write(tmp_path, annotation_xml(
        OBJECT.format(name="grab", flags=FLAGS, box=box_xml(xmin="210.0")),
        OBJECT.format(name="grab", flags=FLAGS, box=box_xml(ymax="119.6")),
        OBJECT.format(name="grab", flags=FLAGS, box=box_xml(xmax="abc")),
        OBJECT.format(name="grab", flags=FLAGS, box=box_xml(ymin="nan")),
        OBJECT.format(name="grab", flags=FLAGS, box="<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"),
        "<object><name>grab</name>" + FLAGS + "</object>",
    )))
    assert codes(annotation, WARNING) == [("coordinate_not_integer", 1), ("coordinate_not_integer", 2)]
    assert codes(annotation, ERROR) == [("coordinate_invalid", i) for i in (3, 4, 5, 6)]
    assert "'210.0'" in annotation.problems[0].message and "rounded to 210" in annotation.problems[0].message
    assert annotation.objects[0].box == (210, 20, 110, 120)
    assert annotation.objects[1].box == (10, 20, 110, 120)
    assert [o.box for o in annotation.objects[2:]] == [None] * 4


def test_flags_missing_are_filled_invalid_are_errors(tmp_path):
    annotation = read_annotation(write(tmp_path, annotation_xml(
        OBJECT.format(name="grab", flags="", box=box_xml()),
        OBJECT.format(name="grab", flags="<truncated>yes</truncated><difficult>1</difficult>", box=box_xml()),
        OBJECT.format(name="", flags=FLAGS, box=box_xml()),
    )))
    assert codes(annotation, WARNING) == [("truncated_missing", 1), ("difficult_missing", 1)]
    assert "filled with 0" in annotation.problems[0].message
    assert codes(annotation, ERROR) == [("truncated_invalid", 2), ("name_missing", 3)]
    assert (annotation.objects[0].truncated, annotation.objects[0].difficult) == (0, 0)
    assert annotation.objects[1].difficult == 1


def test_size_missing_or_invalid(tmp_path):
    missing = read_annotation(write(tmp_path, annotation_xml(size=""), "m.xml"))
    assert codes(missing) == [("size_missing", None)]
    invalid = read_annotation(write(tmp_path, annotation_xml(size="<size><width>0</width><height>24.5</height></size>"), "i.xml"))
    assert codes(invalid) == [("size_invalid", None), ("size_invalid", None)]
    assert invalid.depth is None
