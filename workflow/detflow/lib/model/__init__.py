"""The detector: keras-retinanet's RetinaNet as built here (heads, losses, device), its description, and its
exported formats with their runtimes."""
