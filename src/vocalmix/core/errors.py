"""Exception classes.

Every error that a user can cause has its own class and a one-line message that says
what is wrong and what to do about it. The command line prints ``str(error)`` and exits
with a non-zero code; it never shows a traceback for these.
"""

from __future__ import annotations


class VocalmixError(Exception):
    """Base class of every error vocalmix raises on purpose."""

    exit_code: int = 2


class AudioError(VocalmixError):
    """Something is wrong with an input audio file or signal."""


class AudioFileNotFoundError(AudioError):
    """The input path does not exist."""


class UnreadableAudioError(AudioError):
    """The file exists but cannot be decoded as audio."""


class EmptyAudioError(AudioError):
    """The audio has no samples."""


class SilentAudioError(AudioError):
    """The audio is digital silence (or too quiet to measure)."""


class NonFiniteAudioError(AudioError):
    """The audio contains NaN or infinite samples."""


class ChannelLayoutError(AudioError):
    """The audio has more channels than vocalmix can use without being told how."""


class DurationError(AudioError):
    """The audio is absurdly short or long."""


class SampleRateError(AudioError):
    """The sample rate is unsupported."""


class OutputExistsError(VocalmixError):
    """An output file already exists and ``--force`` was not given."""


class OverwriteInputError(VocalmixError):
    """An output path names one of the input files."""


class ParamsError(VocalmixError):
    """A MixParams document or value is invalid."""


class TargetUnreachableError(VocalmixError):
    """A resolver could not reach its target."""


class ModelError(VocalmixError):
    """Model weights are missing, stale or unreadable."""


class DataError(VocalmixError):
    """A data set folder or manifest is malformed."""


class DependencyError(VocalmixError):
    """An optional feature needs a package that is not installed (the message names the
    extra to install, e.g. ``pip install 'vocalmix[batch]'``)."""
