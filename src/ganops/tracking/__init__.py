"""Everything MLflow, one concern a module (the only package that imports mlflow, lazily,
since the import costs seconds and tracking can be off):

- ``runs``: where runs go, opening and closing them, what a finished run logs, the Model
  Registry (register, promote);
- ``logger``: ``MlflowLogger``, the training loop's ``TrainLogger``, which sends from a
  background thread so the loop never waits on the server;
- ``outbox``: that thread's queue, retries and batching.

Nothing is imported here, so ``import ganops.tracking.outbox`` stays light.
"""
