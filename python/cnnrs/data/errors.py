"""Exceptions raised by :mod:`cnnrs.data`.

Every one subclasses :class:`cnnrs.errors.CnnrsError` and also the built-in
exception that code without cnnrs would catch:

- :class:`DatasetError` (``ValueError``): a data file exists but is corrupt,
  truncated or inconsistent (bad gzip stream, wrong IDX magic, counts that do
  not match, labels out of range, an unexpected pickle layout). A loader never
  returns arrays built from such a file.
- :class:`ChecksumError` (a :class:`DatasetError`): a file's md5 is not the
  published one.
- :class:`DatasetNotFoundError` (``FileNotFoundError``): the files are not
  there and ``download=False``; the message lists every path looked at.
- :class:`DownloadError` (``OSError``): the download failed (no network, HTTP
  error); the message names the URL and says how to provide the files by hand.
"""

from ..errors import CnnrsError


class DatasetError(CnnrsError, ValueError):
    """A data file that is corrupt, truncated or not in the expected format."""


class ChecksumError(DatasetError):
    """A file whose md5 does not match the published checksum."""


class DatasetNotFoundError(CnnrsError, FileNotFoundError):
    """Data set files that are missing and were not asked to be downloaded."""


class DownloadError(CnnrsError, OSError):
    """A download that could not be completed (network, HTTP status, mirror)."""


__all__ = ["ChecksumError", "DatasetError", "DatasetNotFoundError", "DownloadError"]
