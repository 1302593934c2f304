"""Data loading: data sets, a fast DataLoader and batch-capable transforms.

- :class:`Dataset`, :class:`TensorDataset`, :class:`Subset`, :func:`random_split`
- :class:`DataLoader` (see :mod:`cnnrs.data.dataloader` for shuffling, resume and the batch path)
- :mod:`cnnrs.data.transforms`: ``Compose``, ``Normalize``, ``RandomCrop``,
  ``RandomHorizontalFlip``, ``Lambda`` and the MNIST / Fashion-MNIST / CIFAR-10 mean and std
- :class:`MNIST`, :class:`FashionMNIST`, :class:`CIFAR10`: files found through
  the ``root`` argument, ``$CNNRS_DATA/<name>`` or ``~/.cache/cnnrs/<name>``;
  ``download=True`` fetches md5-verified files atomically (see :mod:`cnnrs.data.download`)
- errors: :class:`DatasetError` (corrupt file, a ValueError), :class:`ChecksumError`,
  :class:`DatasetNotFoundError` (a FileNotFoundError), :class:`DownloadError` (an OSError)
"""

from . import transforms
from .cifar import CIFAR10
from .dataloader import DataLoader, default_collate
from .dataset import Dataset, Subset, TensorDataset, random_split
from .errors import ChecksumError, DatasetError, DatasetNotFoundError, DownloadError
from .mnist import MNIST, FashionMNIST

__all__ = [
    "CIFAR10",
    "MNIST",
    "ChecksumError",
    "DataLoader",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNIST",
    "Subset",
    "TensorDataset",
    "default_collate",
    "random_split",
    "transforms",
]
