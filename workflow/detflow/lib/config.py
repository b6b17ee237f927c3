"""Validation of the workflow's configuration against its JSON schema, plus the
checks a schema cannot express. Errors name the offending key."""
from pathlib import Path

import jsonschema
import yaml

from detflow.lib.cli import InputError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _key(path):
    return ".".join(str(part) for part in path) or "(top level)"


def validate_config(config, source="config"):
    """Raise InputError naming the first bad key of ``config``; return it unchanged otherwise."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        raise InputError(f"{source}: {_key(error.absolute_path)}", error.message)
    split = config["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise InputError(f"{source}: split", f"train + val + test must be 1, they sum to {total:g}")
    train = config["train"]
    if train["image_min_side"] > train["image_max_side"]:
        raise InputError(f"{source}: train.image_min_side", "must not exceed train.image_max_side")
    frames = config["frames"]
    if frames["end_s"] is not None and frames["end_s"] <= frames["start_s"]:
        raise InputError(f"{source}: frames.end_s", "must be later than frames.start_s")
    if (config["videos"]["dir"] is None) != (config["annotations"]["dir"] is None):
        raise InputError(
            f"{source}: annotations.dir" if config["annotations"]["dir"] is None else f"{source}: videos.dir",
            "set both videos.dir and annotations.dir for your own data, or neither for the demo",
        )
    return config
