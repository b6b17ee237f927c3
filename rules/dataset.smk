# Rules of the dataset stage: see workflow/detflow/dataset.py.
