# Rules of the export stage: see workflow/detflow/export.py. Not part of the default target:
# `snakemake --cores all export` writes the model for other runtimes into results/export.


rule export:
    input:
        model="results/model/inference.h5",
        calibration="results/voc/ImageSets/Main/train.txt",
        code=stage_code("export"),
    output:
        export_outputs(),
    log:
        "logs/export/export.log",
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        options=section_options("export", "formats", "opset"),
    shell:
        "python -m detflow.export {input.model:q} results/export {params.options} --calibration-voc results/voc"
        " --threads {threads} > {log:q} 2>&1"
