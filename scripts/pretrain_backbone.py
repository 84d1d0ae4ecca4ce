"""Pretrain one of osal's encoders on a labelled dataset and save it as a `model.pretrained` checkpoint.

No public weights can be downloaded on the development machines, so the frozen-feature benchmark
(docs/benchmarks.md) starts from a backbone trained here on data that shares no image with its pool:
the small CNN, trained supervised on Tiny-ImageNet (its 200 classes, the 32x32 copy) for a few CPU epochs.

    python scripts/pretrain_backbone.py --data-dir data --dataset tinyimagenet --width 32 --epochs 3 \
        --out data/backbones/small_cnn32_tinyimagenet32.pt

The file holds the encoder's state_dict and the input it was trained on (size, mean, std), which
osal.models.pretrained reads: `model=small_cnn model.encoder.width=32 model.pretrained=<file>`.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from osal.data.batch_augment import BatchAugment  # noqa: E402
from osal.data.datamodule import channel_stats  # noqa: E402
from osal.data.sources.cifar import CIFAR10Source  # noqa: E402
from osal.data.sources.tinyimagenet import TinyImageNetSource  # noqa: E402
from osal.models.small_cnn import SmallCNNEncoder  # noqa: E402

SOURCES = {"tinyimagenet": TinyImageNetSource, "cifar10": CIFAR10Source}


def accuracy(encoder: nn.Module, head: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             normalise: BatchAugment) -> float:
    encoder.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), 1024):
            x = normalise(images[start:start + 1024], None)
            correct += int((head(encoder(x)).argmax(1) == labels[start:start + 1024]).sum())
    encoder.train()
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="tinyimagenet")
    parser.add_argument("--width", type=int, default=32, help="the small CNN's width (4 x width features)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    # the decode cache train.py uses (cache_dir's default), so that the images are decoded once
    arrays = SOURCES[args.dataset](root=args.data_dir, cache_dir=os.path.join(args.data_dir, ".osal_cache")).load()
    train = torch.from_numpy(np.ascontiguousarray(arrays.train_images.transpose(0, 3, 1, 2)))
    labels = torch.as_tensor(np.asarray(arrays.train_labels), dtype=torch.long)
    test = torch.from_numpy(np.ascontiguousarray(arrays.test_images.transpose(0, 3, 1, 2)))
    test_labels = torch.as_tensor(np.asarray(arrays.test_labels), dtype=torch.long)
    mean, std = channel_stats(arrays.train_images)
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    encoder = SmallCNNEncoder(in_channels=train.shape[1], width=args.width).to(memory_format=torch.channels_last)
    head = nn.Linear(encoder.out_dim, arrays.num_classes)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(parameters, lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = args.epochs * (len(train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=steps)
    augment = BatchAugment(mean, std, crop_padding=4, hflip=True)
    normalise = BatchAugment(mean, std)
    loss_fn = nn.CrossEntropyLoss()
    print(f"{args.dataset}: {len(train)} training images, {arrays.num_classes} classes; small CNN width "
          f"{args.width} ({encoder.out_dim} features), {args.epochs} epochs of {len(train) // args.batch_size} steps")
    started = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for step in range(len(train) // args.batch_size):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(train[batch], generator).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(head(encoder(x)), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss)
            if step % 200 == 0:
                print(f"  epoch {epoch + 1} step {step}: loss {float(loss):.3f} "
                      f"({(epoch * len(train) + (step + 1) * args.batch_size) / (time.perf_counter() - started):.0f}"
                      " images/s)", flush=True)
        print(f"epoch {epoch + 1}: mean loss {total / (step + 1):.3f}, test accuracy "
              f"{accuracy(encoder, head, test, test_labels, normalise):.3f}, {time.perf_counter() - started:.0f} s",
              flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save({"state_dict": encoder.state_dict(),
                "input": {"size": int(train.shape[-1]), "mean": list(mean), "std": list(std)},
                "trained_on": f"{args.dataset} train split, {args.epochs} epochs, small CNN width {args.width}"},
               args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
