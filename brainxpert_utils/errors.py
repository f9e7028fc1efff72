"""Exceptions with messages that tell the user what to do next."""


class BrainXpertError(Exception):
    """Base class for every error the course raises on purpose."""


class DataError(BrainXpertError):
    """A dataset folder, file or split is missing, unreadable or does not match its manifest."""


class DownloadError(BrainXpertError):
    """A download failed (no network, server error, truncated transfer)."""


class ChecksumError(DownloadError):
    """Downloaded or extracted bytes do not match the expected sha256."""


class WeightsError(BrainXpertError):
    """Pretrained weights could not be found or loaded."""
