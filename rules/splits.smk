# Rules of the splits stage: see workflow/detflow/splits.py.
