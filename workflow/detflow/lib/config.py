"""The workflow's configuration: config files read by one checked loader, then validated against the JSON
schema plus the checks a schema cannot express. Errors name the file and line, or the offending key, in
one line."""
import math
import unicodedata
from pathlib import Path

import jsonschema
import yaml

from detflow.lib.cli import InputError
from detflow.lib.names import periodic_problem

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
CONFIG_FILE = "config.yaml"  # the project's config, in the folder Snakemake runs in
# The config.yaml of the project this package belongs to: the defaults where a command runs outside it.
PACKAGE_CONFIG = Path(__file__).resolve().parents[3] / CONFIG_FILE

# train.weights values that name no file.
NAMED_WEIGHTS = ("none", "imagenet")
# The one training variant when train.variants is absent or empty.
DEFAULT_VARIANT = "default"

MERGE_TAG = "tag:yaml.org,2002:merge"


class _CheckedLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing what a YAML loader would silently accept: a key given twice in one mapping
    (the last would win), and a number that is NaN or infinite (no setting means either)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *anchor`: keys written beside it override the anchor's, as YAML means
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"{key!r} is given twice in one section (first on line {seen[key] + 1}); a YAML "
                            "loader would keep only the last one", problem_mark=key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.MarkedYAMLError(problem=f"{node.value} is not a number any setting can take",
                                       problem_mark=node.start_mark)
        return value


_CheckedLoader.add_constructor("tag:yaml.org,2002:float", _CheckedLoader.construct_yaml_float)
_CheckedLoader.add_constructor("tag:yaml.org,2002:map", _CheckedLoader.construct_mapping)


def load_config_file(path):
    """The settings in a config file (YAML, or JSON, which YAML reads too), read by the one checked loader:
    InputError names the file, and the line where there is one, for bytes that are not text, YAML that does
    not parse, a key given twice in one section, a NaN or infinite number, or a file that holds no mapping."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(path, f"is not a text file (byte {error.start} is not UTF-8): a config file is YAML "
                               "text such as config.yaml") from None
    if "\0" in text:
        raise InputError(path, "is not a text file (it holds NUL bytes): a config file is YAML text such as "
                               "config.yaml")
    try:
        content = yaml.load(text, Loader=_CheckedLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise InputError(where, " ".join(part for part in (error.context, error.problem) if part)) from None
    except yaml.YAMLError as error:
        raise InputError(path, f"is not valid YAML ({error})") from None
    if not isinstance(content, dict):
        raise InputError(path, "holds no settings: a config file is a YAML mapping of sections (videos:, "
                               "classes:, ...) as config.yaml")
    return content


def _non_finite(value, path=()):
    """The key path of the first NaN or infinite number in ``value`` (as given by ``--config`` too), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, (*path, key))
        if found is not None:
            return found
    return None


def _key(path):
    return ".".join(str(part) for part in path) or "(top level)"


def class_name_problem(name):
    """What is wrong with a class name, in words; None for a good one."""
    if not name:
        return "is empty"
    if "," in name:
        return "contains a comma, which separates classes on the command line"
    if any(character in name for character in "<>&"):
        return "contains < > or &, which would need escaping in Pascal VOC XML and Label Studio's labelling config"
    if "\n" in name or "\r" in name:
        return "contains a line break, and labelImg's classes.txt holds one name a line"
    if name != name.strip():
        return "starts or ends with a space, which readers of Pascal VOC <name> trim away"
    if any(character.isspace() and character != " " for character in name):
        return "contains a tab or another space character than the plain space"
    if any(unicodedata.category(character) == "Cc" for character in name):
        return "contains a control character"
    if "  " in name:
        return "contains two spaces in a row; separate words with single spaces"
    return None


def _message(error):
    """The schema error in words: a pattern is explained by the item's description, never shown raw."""
    if error.validator == "pattern":
        if list(error.absolute_path)[:1] == ["classes"]:
            problem = class_name_problem(error.instance) or "is not allowed"
            return f"{error.instance!r} {problem}; {error.schema['description']}"
        if "description" in error.schema:
            return f"{error.instance!r} is not allowed; expected {error.schema['description']}"
    if "description" in error.schema:
        if error.instance is None:
            return f"is empty (null); expected {error.schema['description']}"
        return f"{error.message}; expected {error.schema['description']}"
    return error.message


def _check_weights(weights, project_dir, source, section="train"):
    """A variant's weights is none, imagenet or the path of an existing file (relative to the project folder)."""
    if weights in NAMED_WEIGHTS:
        return
    path = Path(weights)
    where = path if path.is_absolute() else Path(project_dir) / path
    usage = "set it to none, imagenet or the path of an existing .h5 weights file"
    if not where.exists() and weights.lower() in NAMED_WEIGHTS:
        raise InputError(f"{source}: {section}.weights",
                         f"{weights!r} names no file; write {weights.lower()} in lower case")
    if not where.exists():
        raise InputError(f"{source}: {section}.weights",
                         f"{weights!r} does not exist (looked for {where}); {usage}")
    if not where.is_file():
        raise InputError(f"{source}: {section}.weights",
                         f"{weights!r} is a folder, not a weights file ({where}); {usage}")


def training_variants(train):
    """{variant name: its training settings}: the train section with each variant's overrides (train.variants,
    in config order), without the variants key; the one variant "default" when there are none."""
    base = {key: value for key, value in train.items() if key != "variants"}
    variants = train.get("variants") or {DEFAULT_VARIANT: {}}
    return {name: {**base, **(overrides or {})} for name, overrides in variants.items()}


def _check_train(train, schema, validator, where, project_dir, source):
    """One variant's settings: the train section's schema and the checks it cannot express."""
    train_schema = {**schema["properties"]["train"], "definitions": schema.get("definitions", {})}
    train_schema["properties"] = {k: v for k, v in train_schema["properties"].items() if k != "variants"}
    errors = sorted(type(validator)(train_schema).iter_errors(train), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        key = ".".join([where, *map(str, errors[0].absolute_path)])
        raise InputError(f"{source}: {key}", _message(errors[0]))
    _check_weights(train["weights"], project_dir, source, where)
    if train["image_min_side"] > train["image_max_side"]:
        raise InputError(f"{source}: {where}.image_min_side", f"must not exceed {where}.image_max_side")


def validate_config(config, source="config", project_dir=None):
    """Raise InputError naming the first bad key of ``config``; return it unchanged otherwise.
    ``project_dir``: the folder that relative paths are relative to (Snakemake's working directory,
    the current one by default)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft7Validator(schema)
    non_finite = _non_finite(config)
    if non_finite is not None:  # the schema's bounds let NaN through: it compares false with every bound
        raise InputError(f"{source}: {_key(non_finite)}", "is not a number any setting can take (NaN or infinite)")
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        raise InputError(f"{source}: {_key(error.absolute_path)}", _message(error))
    normalised = [unicodedata.normalize("NFC", name) for name in config["classes"]]
    for index, name in enumerate(normalised):
        if name in normalised[:index]:
            first = normalised.index(name)
            typed, earlier = ascii(config["classes"][index]), ascii(config["classes"][first])
            raise InputError(f"{source}: classes.{index}", f"{typed} is classes.{first} ({earlier}) "
                             "with its accents composed differently; list each class once")
    split = config["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise InputError(f"{source}: split", f"train + val + test must be 1, they sum to {total:g}")
    project_dir = Path.cwd() if project_dir is None else project_dir
    for name, settings in training_variants(config["train"]).items():
        where = f"train.variants.{name}" if config["train"].get("variants") else "train"
        problem = periodic_problem(name)  # the schema limits its characters and length
        if problem:
            raise InputError(f"{source}: {where}", f"the variant name {name!r} {problem}; choose another name")
        _check_train(settings, schema, validator, where, project_dir, source)
    frames = config["frames"]
    if frames["end_s"] is not None and frames["end_s"] <= frames["start_s"]:
        raise InputError(f"{source}: frames.end_s", "must be later than frames.start_s")
    if (config["videos"]["dir"] is None) != (config["annotations"]["dir"] is None):
        raise InputError(
            f"{source}: annotations.dir" if config["annotations"]["dir"] is None else f"{source}: videos.dir",
            "set both videos.dir and annotations.dir for your own data, or neither for the demo",
        )
    return config


def read_config(path):
    """The validated workflow config at ``path``, or None when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    return validate_config(load_config_file(path), source=str(path))


def project_config(path=None):
    """The validated config that a command run by hand takes its defaults from: ``path`` when given (it must
    exist), else ./config.yaml, else the config.yaml of the project this package belongs to. config.yaml is
    the one source of every default."""
    for candidate in ([path] if path else [CONFIG_FILE, PACKAGE_CONFIG]):
        config = read_config(candidate)
        if config is not None:
            return config
    raise InputError(path or CONFIG_FILE, "no such config file; the defaults of every option are in the "
                                          "project's config.yaml: run in the project folder, or give --config")

