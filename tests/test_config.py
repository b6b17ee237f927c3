"""The configuration check at start-up (detflow.lib.config): train.weights must name an existing file
(or be none / imagenet), class names are refused in words, never as a raw regular expression, and a
class name with a space (labelImg's `thumbs up`) travels through the workflow's command lines, the
dataset stage, labelImg's classes.txt, the VOC tree and keras-retinanet's Pascal VOC reader."""
import copy
import json
import re
import shlex

import jsonschema
import pytest
import yaml
from lxml import etree

from detflow.lib.cli import InputError
from detflow.lib.config import SCHEMA_PATH, class_name_problem, load_config_file, training_variants, validate_config
from helpers.workflow import REPO, TINY_DEMO, TINY_WORKFLOW


@pytest.fixture(scope="module")
def shipped():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def with_values(config, **sections):
    config = copy.deepcopy(config)
    for section, values in sections.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def refusal(config, project_dir):
    with pytest.raises(InputError) as error:
        validate_config(config, project_dir=project_dir)
    message = str(error.value)
    assert "\n" not in message
    return message


# train.weights


@pytest.mark.parametrize("weights", ["none", "imagenet"])
def test_named_weights_need_no_file(shipped, tmp_path, weights):
    validate_config(with_values(shipped, train={"weights": weights}), project_dir=tmp_path)


def test_weights_file_relative_to_the_project_folder(shipped, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models/start.h5").write_bytes(b"weights")
    validate_config(with_values(shipped, train={"weights": "models/start.h5"}), project_dir=tmp_path)
    message = refusal(with_values(shipped, train={"weights": "models/start.h5"}), tmp_path / "elsewhere")
    assert message.startswith("config: train.weights: 'models/start.h5' does not exist")


def test_missing_weights_file_is_refused_naming_key_and_path(shipped, tmp_path):
    message = refusal(with_values(shipped, train={"weights": "models/old.h5"}), tmp_path)
    looked = tmp_path / "models/old.h5"
    assert message == (f"config: train.weights: 'models/old.h5' does not exist (looked for {looked}); "
                       "set it to none, imagenet or the path of an existing .h5 weights file")
    absolute = tmp_path / "gone.h5"
    assert f"config: train.weights: '{absolute}' does not exist" in refusal(
        with_values(shipped, train={"weights": str(absolute)}), tmp_path)


def test_weights_folder_is_refused(shipped, tmp_path):
    (tmp_path / "models").mkdir()
    message = refusal(with_values(shipped, train={"weights": "models"}), tmp_path)
    assert message.startswith("config: train.weights: 'models' is a folder, not a weights file")


@pytest.mark.parametrize("weights, expected", [
    ("ImageNet", "config: train.weights: 'ImageNet' names no file; write imagenet in lower case"),
    ("None", "config: train.weights: 'None' names no file; write none in lower case"),
    (None, "config: train.weights: is empty (null); expected none, imagenet or the path of an existing .h5 "
           "weights file"),
])
def test_weights_spelling_is_explained(shipped, tmp_path, weights, expected):
    assert refusal(with_values(shipped, train={"weights": weights}), tmp_path) == expected


def test_missing_weights_stop_snakemake_before_any_job(workflow_copy):
    """A missing weights file used to leave an earlier model in place (exit 0); now nothing runs."""
    workflow_copy.set_config(demo=TINY_DEMO, train={"weights": "models/old.h5"})
    result = workflow_copy.snakemake("-n", check=False)
    assert result.returncode != 0
    line = ("invalid configuration: config: train.weights: 'models/old.h5' does not exist "
            f"(looked for {workflow_copy.root / 'models/old.h5'}); ")
    assert line in result.stdout
    assert "Traceback" not in result.stdout
    assert not (workflow_copy.root / "results").exists()
    (workflow_copy.root / "models").mkdir()
    (workflow_copy.root / "models/old.h5").write_bytes(b"weights")
    assert "train" in workflow_copy.dry_run_jobs()


# Class names


@pytest.mark.parametrize("name, problem", [
    ("red,plum", "contains a comma, which separates classes on the command line"),
    ("a<b", "contains < > or &"),
    ("salt & pepper", "contains < > or &"),
    (" thumbs up", "starts or ends with a space"),
    ("thumbs up ", "starts or ends with a space"),
    ("thumbs\tup", "contains a tab"),
    ("thumbs\u00a0up", "contains a tab or another space character than the plain space"),
    ("thumbs\nup", "contains a line break"),
    ("thumbs  up", "contains two spaces in a row"),
    ("bell\x07", "contains a control character"),
    ("", "is empty"),
])
def test_bad_class_names_are_explained_in_words(shipped, tmp_path, name, problem):
    message = refusal(with_values(shipped, classes=["grab", name]), tmp_path)
    assert message.startswith(f"config: classes.1: {name!r} {problem}")
    assert message.endswith("class names are words separated by single spaces (thumbs up), "
                            "without commas, < > &, tabs or line breaks")
    assert "does not match" not in message and "^[" not in message


@pytest.mark.parametrize("name", ["thumbs up", "peace-sign", "OK_hand", "lâcher", "point left 2", "手"])
def test_good_class_names(shipped, tmp_path, name):
    validate_config(with_values(shipped, classes=[name, "drop"]), project_dir=tmp_path)
    assert class_name_problem(name) is None


def test_schema_pattern_and_explanation_agree():
    """Every name the schema's pattern refuses has a reason in words, and every reason is a refusal."""
    pattern = re.compile(yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["classes"]["items"]["pattern"])
    names = ["thumbs up", "a", "a b c", "x,y", "a&b", "<", " a", "a ", "a  b", "a\tb", "a\rb", "a\x00b", "a\x85b",
             "a\u2003b", "a\x7fb", "ü", "a.b", "a/b", "a'b", 'a"b', "$x", "a;b"]
    for name in names:
        assert (pattern.search(name) is None) == (class_name_problem(name) is not None), name


def test_one_class_typed_twice_in_two_unicode_forms(shipped, tmp_path):
    message = refusal(with_values(shipped, classes=["l\u00e2cher", "la\u0302cher"]), tmp_path)
    assert message.startswith(r"config: classes.1: 'la\u0302cher' is classes.0 ('l\xe2cher')")


@pytest.mark.parametrize("section, values, expected", [
    ("train", {"backbone": "resnet"},
     "config: train.backbone: 'resnet' is not allowed; expected a keras-retinanet backbone: resnet50, "),
    ("videos", {"extensions": [".mp4"]},
     "config: videos.extensions.0: '.mp4' is not allowed; expected a file ending is letters and digits"),
])
def test_patterns_are_said_in_words(shipped, tmp_path, section, values, expected):
    message = refusal(with_values(shipped, **{section: values}), tmp_path)
    assert message.startswith(expected)
    assert "does not match" not in message


# train.variants


def test_variants_are_the_train_section_with_their_overrides(shipped, tmp_path):
    assert list(training_variants(shipped["train"])) == ["default"]  # none: one variant, "default"
    variants = {"small": None, "wide": {"feature_size": 128, "backbone": "resnet50", "threads": 1}}
    config = with_values(shipped, train={"variants": variants})
    validate_config(config, project_dir=tmp_path)
    settings = training_variants(config["train"])
    assert list(settings) == ["small", "wide"]  # config order
    assert settings["small"] == {key: value for key, value in shipped["train"].items() if key != "variants"}
    assert (settings["wide"]["feature_size"], settings["wide"]["backbone"], settings["wide"]["epochs"]) == (
        128, "resnet50", shipped["train"]["epochs"])


@pytest.mark.parametrize("variants, expected", [
    ({"a/b": {}}, "config: train.variants: 'a/b' is not allowed; expected a variant name: letters, digits"),
    ({"wide": {"feature_size": 0}}, "config: train.variants.wide.feature_size: 0 is less than the minimum of 1"),
    ({"wide": {"backbone": "resnet"}}, "config: train.variants.wide.backbone: 'resnet' is not allowed"),
    ({"wide": {"epoch": 3}}, "config: train.variants.wide: Additional properties are not allowed ('epoch'"),
    ({"wide": {"weights": "old.h5"}}, "config: train.variants.wide.weights: 'old.h5' does not exist"),
    ({"wide": {"image_min_side": 400}}, "config: train.variants.wide.image_min_side: must not exceed"),
    ({"wide": {"variants": {}}}, "config: train.variants.wide: 'variants' should not be valid"),
])
def test_bad_variants_are_refused_naming_the_variant_and_key(shipped, tmp_path, variants, expected):
    message = refusal(with_values(shipped, train={"variants": variants}), tmp_path)
    assert message.startswith(expected), message


def test_the_shipped_config_is_valid(shipped):
    jsonschema.Draft7Validator.check_schema(yaml.safe_load(SCHEMA_PATH.read_text()))
    validate_config(shipped, project_dir=REPO)


def test_bad_class_name_stops_snakemake_in_words(workflow_copy):
    workflow_copy.set_config(classes=["red plum,x", "drop"])
    result = workflow_copy.snakemake("-n", check=False)
    assert result.returncode != 0
    assert ("invalid configuration: config: classes.0: 'red plum,x' contains a comma, which separates classes "
            "on the command line; class names are words separated by single spaces") in result.stdout
    assert "Traceback" not in result.stdout


def test_class_with_a_space_travels_to_the_voc_tree(workflow_copy):
    """`thumbs up` through the rules' command lines (the dry run's), the demo, labelImg's classes.txt,
    the dataset and splits stages, and keras-retinanet's Pascal VOC reader of the tree."""
    workflow_copy.set_config(**TINY_WORKFLOW, classes=["thumbs up", "drop"])
    commands = workflow_copy.snakemake("-n", "-p").stdout
    train = next(line for line in commands.splitlines() if "python -m detflow.train " in line)
    arguments = shlex.split(train.split(">")[0])
    assert arguments[arguments.index("--classes") + 1] == "thumbs up,drop"
    assert "--classes 'thumbs up,drop'" in commands  # dataset, demo and labelling rules alike

    workflow_copy.snakemake("results/voc/splits.json", "results/labelling/labelimg.txt")
    results = workflow_copy.root / "results"
    assert (results / "labelling/classes.txt").read_text().splitlines() == ["thumbs up", "drop"]
    assert json.loads((results / "voc/classes.json").read_text()) == {"thumbs up": 0, "drop": 1}
    names = {element.text for xml in (results / "voc/Annotations").glob("*.xml")
             for element in etree.parse(str(xml)).iter("name")}
    assert names == {"thumbs up", "drop"}
    split_ids = (results / "voc/ImageSets/Main/train.txt").read_text().split()
    assert split_ids and all(" " not in image_id for image_id in split_ids)

    from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator

    generator = PascalVocGenerator(str(results / "voc"), "train", classes={"thumbs up": 0, "drop": 1},
                                   skip_difficult=False)
    labels = {int(label) for index in range(generator.size()) for label in generator.load_annotations(index)["labels"]}
    assert labels == {0, 1}
    assert generator.label_to_name(0) == "thumbs up"


def test_ap_of_a_class_with_a_space_round_trips_through_tensorboard(tmp_path):
    """Training logs `AP_thumbs up`; TensorBoard keeps the tag as written and the report reads it back."""
    import tensorflow as tf

    from detflow.lib.training.tensorboard_logs import read_scalars

    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        tf.summary.scalar("epoch_AP_thumbs up", 0.5, step=0)
    assert read_scalars(tmp_path, "epoch_AP_thumbs up") == {0: 0.5}


# Config files: one checked loader names the file and line
@pytest.mark.parametrize("content, expected", [
    (b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\x00\x08\x08\x00\x04\x00\x10\x00" + bytes(range(256)) * 16,
     ": is not a text file (byte 0 is not UTF-8): a config file is YAML text such as config.yaml"),
    (b"videos:\n  dir: null\n  extensions: [mp4\n", ", line 4: while parsing a flow sequence expected ',' or ']'"),
    (b"train:\n  epochs: 3\nclasses: [a, b]\ntrain:\n  epochs: 4\n",
     ", line 4: 'train' is given twice in one section (first on line 1); a YAML loader would keep only the last one"),
    (b"predict:\n  score_threshold: .nan\n", ", line 2: .nan is not a number any setting can take"),
    (b"train:\n  learning_rate: -.Inf\n", ", line 2: -.Inf is not a number any setting can take"),
    (b"- videos\n- classes\n", ": holds no settings: a config file is a YAML mapping of sections"),
    (b"a:\n\tb: 1\n", ", line 2: while scanning for the next token found character '\\t' that cannot start any token"),
    (b"base: &b\n  epochs: 3\ntrain:\n  <<: *b\n  steps: 5\n  steps: 6\n",
     ", line 6: 'steps' is given twice in one section (first on line 5)"),
    (b"train:\n  <<: 3\n", ", line 2: while constructing a mapping expected a mapping or list of mappings for merging"),
])
def test_a_bad_config_file_is_named_with_its_line_and_reason(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError) as error:
        load_config_file(path)
    assert str(error.value).startswith(f"{path}{expected}")
    assert "\n" not in str(error.value)


def test_variants_may_share_settings_through_a_yaml_anchor_and_merge_key(tmp_path):
    """`<<: *anchor` is YAML's way of sharing settings (it used to be refused as an unknown tag): the keys
    written beside it override the anchor's, which is not a key given twice."""
    path = tmp_path / "variants.yaml"
    path.write_text("train:\n  variants:\n    small: &small\n      feature_size: 32\n      learning_rate: 0.002\n"
                    "    small_fast:\n      <<: *small\n      learning_rate: 0.003\n")
    assert load_config_file(path)["train"]["variants"] == {
        "small": {"feature_size": 32, "learning_rate": 0.002},
        "small_fast": {"feature_size": 32, "learning_rate": 0.003}}


def test_nan_anywhere_in_the_config_is_refused_naming_its_key(shipped, tmp_path):
    """NaN passes the schema (it compares false with every bound), so it is refused before it."""
    config = with_values(shipped, predict={"score_threshold": float("nan")})
    assert refusal(config, tmp_path) == "config: predict.score_threshold: is not a number any setting can take " \
                                        "(NaN or infinite)"
    config = with_values(shipped, train={"variants": {"fast": {"learning_rate": float("inf")}}})
    assert refusal(config, tmp_path) == "config: train.variants.fast.learning_rate: is not a number any setting " \
                                        "can take (NaN or infinite)"


@pytest.mark.parametrize("name, expected", [
    ("a" * 25, "ends in 'a' repeated 25 times, which Snakemake refuses"),
    ("ab" * 30, "ends in 'ab' repeated 30 times"),
])
def test_a_variant_name_snakemake_would_refuse_is_refused_first(shipped, tmp_path, name, expected):
    config = with_values(shipped, train={"variants": {name: {}}})
    message = refusal(config, tmp_path)
    assert message.startswith(f"config: train.variants.{name}: the variant name '{name}' {expected}")


@pytest.mark.parametrize("where", ["config.yaml", "--configfile"])
@pytest.mark.parametrize("content, expected", [
    ("train:\n  epochs: 3\n", "'train' is given twice in one section"),
    ("predict:\n  score_threshold: .nan\n", ".nan is not a number any setting can take"),
])
def test_snakemake_stops_on_a_config_file_the_loader_refuses(workflow_copy, tmp_path, where, content, expected):
    """A repeated section used to drop the first one silently; a NaN used to fail every prediction job."""
    if where == "config.yaml":
        path = workflow_copy.root / "config.yaml"
        shipped = path.read_text()
        changed = shipped.replace("  score_threshold: 0.5 ", "  score_threshold: .nan ", 1) if "nan" in content \
            else shipped + content
        assert changed != shipped
        path.write_text(changed)
        arguments = []
    else:
        path = tmp_path / "extra.yaml"
        path.write_text("train:\n  epochs: 2\n" + content if "train" in content else content)
        arguments = ["--configfile", str(path)]
    result = workflow_copy.snakemake("-n", *arguments, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout
    assert re.search(rf"invalid configuration: {re.escape(str(path if where != 'config.yaml' else 'config.yaml'))}, "
                     rf"line \d+: {re.escape(expected)}", result.stdout), result.stdout[-2000:]
