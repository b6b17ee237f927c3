# Rules of the convert stage: see workflow/detflow/convert.py.
