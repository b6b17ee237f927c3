# Rules of the demo stage: see workflow/detflow/demo.py.
