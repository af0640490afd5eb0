"""Exception classes.

Every error that a user can cause has its own class, a stable machine-readable ``code``
and a one-line message that says what is wrong. Messages describe the problem in the
library's terms and never name a command-line flag or a form field: each front end adds
its own hint for the classes it can help with (the CLI's ``--fold``, the server's form
field ``fold``), by class, not by rewriting the text.
"""

from __future__ import annotations

from typing import ClassVar


class VocalmixError(Exception):
    """Base class of every error vocalmix raises on purpose.

    Attributes:
        code: a stable identifier of the kind of error (``audio.unreadable``...), for
            programs (the HTTP API returns it; the batch results table stores it).
        exit_code: the command line's exit status for it.
    """

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 2


class AudioError(VocalmixError):
    """Something is wrong with an input audio file or signal."""

    code = "audio.invalid"


class AudioFileNotFoundError(AudioError):
    """The input path does not exist."""

    code = "audio.not_found"


class UnreadableAudioError(AudioError):
    """The file exists but cannot be decoded as audio."""

    code = "audio.unreadable"


class EmptyAudioError(AudioError):
    """The audio has no samples."""

    code = "audio.empty"


class SilentAudioError(AudioError):
    """The audio is digital silence (or too quiet to measure)."""

    code = "audio.silent"


class NonFiniteAudioError(AudioError):
    """The audio contains NaN or infinite samples."""

    code = "audio.non_finite"


class AudioLevelError(AudioError):
    """The samples reach levels no real recording has (far above full scale): the file's
    scaling is wrong."""

    code = "audio.level"


class ChannelLayoutError(AudioError):
    """The audio has more channels than vocalmix can use without being told how to fold
    them (to mono by averaging, or by keeping the first two)."""

    code = "audio.channels"


class DurationError(AudioError):
    """The audio is absurdly short or long."""

    code = "audio.duration"


class AudioTooLargeError(AudioError):
    """The audio would decode to more samples (frames x channels) than allowed: refused
    from its header, before decoding."""

    code = "audio.too_large"


class SampleRateError(AudioError):
    """The sample rate is unsupported."""

    code = "audio.sample_rate"


class OutputError(VocalmixError):
    """An output cannot be written where it was asked for."""

    code = "output.invalid"


class OutputExistsError(OutputError):
    """An output file already exists and replacing it was not allowed."""

    code = "output.exists"


class OverwriteInputError(OutputError):
    """An output path names one of the input files."""

    code = "output.is_input"


class ParamsError(VocalmixError):
    """A MixParams document or value is invalid."""

    code = "params.invalid"


class TargetUnreachableError(VocalmixError):
    """A resolver could not reach its target."""

    code = "target.unreachable"


class ModelError(VocalmixError):
    """Model weights are missing, stale or unreadable."""

    code = "model.unavailable"


class AnalysisError(VocalmixError):
    """An input is too short, too quiet or too plain for an analysis an estimator wants
    (a reverb read needs phrase ends, a level read needs singing): that estimate is
    skipped and the rule's choice kept."""

    code = "analysis.unavailable"


class DataError(VocalmixError):
    """A data set folder or manifest is malformed."""

    code = "data.invalid"


class DependencyError(VocalmixError):
    """An optional feature needs a package that is not installed (the message names the
    extra to install, e.g. ``pip install 'vocalmix[batch]'``)."""

    code = "dependency.missing"


__all__ = [
    "AnalysisError",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLargeError",
    "AudioLevelError",
    "ChannelLayoutError",
    "DataError",
    "DependencyError",
    "DurationError",
    "EmptyAudioError",
    "ModelError",
    "NonFiniteAudioError",
    "OutputError",
    "OutputExistsError",
    "OverwriteInputError",
    "ParamsError",
    "SampleRateError",
    "SilentAudioError",
    "TargetUnreachableError",
    "UnreadableAudioError",
    "VocalmixError",
]
