# Rules of the report stage: see workflow/detflow/report.py.
