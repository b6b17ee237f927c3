"""Plain helper code of the tests, one concept per module: ``media`` writes videos and images with
OpenCV (pattern frames, noise, every container, broken files) and hashes files; ``voc`` writes
Pascal VOC annotations, labelled frames and synthetic VOC trees and extracts the real plums tree;
``models`` makes small real keras-retinanet models and holds the settings that train one in
seconds; ``workflow`` copies the workflow to run Snakemake in, reads its rules and holds the tiny
configurations of the Snakemake runs. The pytest fixtures built on them are in tests/conftest.py."""
