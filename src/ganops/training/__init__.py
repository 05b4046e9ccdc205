"""The training run, one concern a module:

- ``step``: one iteration (the D and G updates, EMA, learning rates) and the GAN's parts;
- ``loop``: ``fit``, the loop over epochs and batches, with logging, checkpoints and resume;
- ``cuda_graphs``: the same iterations replayed as CUDA graphs on one GPU;
- ``distributed``: torchrun/DDP: ranks, sharding and agreement between processes.

The files a run leaves and the checkpoint it resumes are the train stage's
(``ganops.stages.train_files``, ``ganops.kept_checkpoint``): this package writes no file.

Nothing is imported here, so ``import ganops.training.step`` stays light.
"""
