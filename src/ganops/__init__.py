"""ganops: GANs on MNIST as a reproducible DVC pipeline, tracked in MLflow, gated by FID."""

__version__ = "0.1.0"
