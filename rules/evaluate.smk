# Rules of the evaluate stage: see workflow/detflow/evaluate.py.
