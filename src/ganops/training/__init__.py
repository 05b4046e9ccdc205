"""The training run, one concern a module:

- ``step``: one iteration (the D and G updates, EMA, learning rates) and the GAN's parts;
- ``loop``: ``fit``, the loop over epochs and batches, with logging, checkpoints and resume;
- ``cuda_graphs``: the same iterations replayed as CUDA graphs on one GPU;
- ``distributed``: torchrun/DDP: ranks, sharding and agreement between processes;
- ``kept_checkpoint``: the interrupted run's checkpoint kept outside ``models/`` (which
  ``dvc exp run`` checks out from dvc.lock before the stage runs), and put back.

Nothing is imported here, so ``import ganops.training.step`` stays light.
"""
