"""The values of the project's config.yaml that the tests pass where the rules would pass config's."""
import yaml

from detflow.lib.cli import options_of
from detflow.lib.inference.events import EventSettings
from helpers.workflow import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
EVENTS = EventSettings.from_config(CONFIG["events"])
DATASET = CONFIG["dataset"]  # classes_from, on_error, boxes_outside of the dataset stage
BATCH = CONFIG["predict"]["batch_size"]


def config_options(section, *keys):
    """Command-line arguments of a config section (some ``keys`` of it, or all), as its rule passes them."""
    values = CONFIG[section]
    return options_of({key: values[key] for key in (keys or values)})
