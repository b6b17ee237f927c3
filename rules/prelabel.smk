# Rules of the prelabel stage: see workflow/detflow/prelabel.py.
