# From raw videos of hand gestures to a trained RetinaNet detector and its
# annotated predictions. Settings: config.yaml. Stages: rules/*.smk, whose
# logic lives in workflow/detflow/.
from snakemake.utils import min_version

min_version("9.0")


include: "rules/setup.smk"


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/frames.smk"
include: "rules/frames_to_label.smk"
include: "rules/dataset.smk"
include: "rules/splits.smk"
include: "rules/train.smk"
include: "rules/best_snapshot.smk"
include: "rules/convert.smk"
include: "rules/export.smk"
include: "rules/predict.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/drafts.smk"
include: "rules/label_studio.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
