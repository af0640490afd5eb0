"""Estimators: from an input pair to a :class:`~vocalmix.core.params.MixParams` of targets
and unresolved settings. Inference only: they import the core, never training code or the
renderer. One entry point, :func:`vocalmix.estimators.registry.estimate`; the learned
models' shipped files are read by :mod:`vocalmix.estimators.weights`.
"""
