"""The class-metrics judge as a network: a small CNN for 28x28 images, its training loop
and what it says about a set of images (``ganops.metrics.classes`` reads its outputs). Its
file format, saving and loading are ``ganops.classifier``'s (an adapter)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganops.models import NUM_CLASSES

FEATURE_DIM = 128


class Classifier(nn.Module):
    """Two conv blocks and a 128-d feature layer: over 99% MNIST test accuracy in 3 epochs.

    Each block pools before its BatchNorm and ReLU, so those run on a quarter of the values
    (max-pooling commutes with ReLU, not with BatchNorm: a different net from version 1's
    conv-BN-ReLU-pool, hence the new file format); on a CPU that is most of a step's time.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),  # (B, 32, 28, 28)
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # (B, 64, 14, 14)
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURE_DIM),
            nn.ReLU(),  # (B, 128): the features of the Fréchet classifier distance
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images in [-1, 1] (B, 1, 28, 28) -> (logits (B, C), features (B, 128))."""
        features = self.body(images)
        return self.head(features), features


@dataclass(frozen=True)
class Outputs:
    """What the classifier says about a set of images."""

    probabilities: Tensor  # (N, C) softmax
    features: Tensor  # (N, 128)


def train_classifier(
    model: Classifier,
    images: Tensor,
    *,
    labels: Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    bf16: bool = False,
    on_batch: Callable[[float], None] = lambda loss: None,
) -> Classifier:
    """Adam with cosine decay on cross-entropy over ``images`` (already on the model's
    device), shuffled by ``seed``; ``bf16``: forward passes under bf16 autocast (weights,
    optimizer and loss stay float32)."""
    device = images.device
    # channels_last: oneDNN's (and cuDNN's) fast convolution layout, kept from batch to batch.
    model.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay to 0 over the run: the last epoch settles in (98.4% -> 99%+ on MNIST).
    steps = -(-len(images) // batch_size) * epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), device=device, generator=generator)
        for index in order.split(batch_size):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, _ = model(images[index])
            loss = nn.functional.cross_entropy(logits.float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            on_batch(loss.item())
    return model.eval()


def classify(model: Classifier, batches: Iterable[Tensor], *, device: torch.device) -> Outputs:
    """Softmax probabilities and features of every image in ``batches``, on the CPU."""
    was_training = model.training
    model.eval()
    probabilities, features = [], []
    with torch.inference_mode():
        for batch in batches:
            logits, feats = model(batch.to(device))
            probabilities.append(logits.float().softmax(dim=1).cpu())
            features.append(feats.float().cpu())
    model.train(was_training)
    return Outputs(torch.cat(probabilities), torch.cat(features))


def accuracy(model: Classifier, images: Tensor, *, labels: Tensor, batch_size: int = 1000) -> float:
    device = next(model.parameters()).device
    outputs = classify(model, images.split(batch_size), device=device)
    return float((outputs.probabilities.argmax(dim=1) == labels.cpu()).float().mean())
