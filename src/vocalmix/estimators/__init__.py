"""Estimators: from an input pair to a :class:`~vocalmix.core.params.MixParams` of targets
and unresolved settings. Inference only: they import the core, never training code or the
renderer.
"""
