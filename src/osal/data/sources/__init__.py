"""Dataset sources: each reads one on-disk layout into in-memory uint8 arrays."""

from osal.data.sources.base import ImageArrays
from osal.data.sources.cifar import CIFAR10Source, CIFAR100Source
from osal.data.sources.digits import DigitsSource
from osal.data.sources.imagefolder import ImageFolderSource
from osal.data.sources.mnist import FashionMNISTSource, MNISTSource
from osal.data.sources.tinyimagenet import TinyImageNetSource

__all__ = [
    "ImageArrays",
    "CIFAR10Source",
    "CIFAR100Source",
    "DigitsSource",
    "FashionMNISTSource",
    "ImageFolderSource",
    "MNISTSource",
    "TinyImageNetSource",
]
