# Rules of the frames stage: see workflow/detflow/frames.py.
