# Rules of the predict stage: see workflow/detflow/predict.py.
