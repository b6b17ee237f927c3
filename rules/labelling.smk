# Rules of the labelling stage: see workflow/detflow/labelling.py.
