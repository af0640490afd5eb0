"""The mixing core: parameters, file I/O, measurement, DSP, resolvers and the renderer.

Everything here is a pure function of numpy arrays with an explicit sample rate (file I/O
lives in :mod:`vocalmix.core.audio` alone). The core imports nothing else of vocalmix.
"""

from vocalmix.core.threads import fft_threads_readable as _fft_threads_readable

# before any FFT of the core runs: SciPy 1.18's FFTs fail on an OMP_NUM_THREADS they
# cannot read (an empty one among them)
_fft_threads_readable()
