# Rules of the best_snapshot stage: see workflow/detflow/best_snapshot.py.
