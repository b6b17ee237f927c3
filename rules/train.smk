# Rules of the train stage: see workflow/detflow/train.py.
