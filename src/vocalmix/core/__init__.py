"""The mixing core: parameters, file I/O, measurement, DSP, resolvers and the renderer.

Everything here is a pure function of numpy arrays with an explicit sample rate (file I/O
lives in :mod:`vocalmix.core.audio` alone). The core imports nothing else of vocalmix.
"""
