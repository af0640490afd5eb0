"""Training and evaluation: data sets, training examples, fitting the estimators' weights,
cross-validation and reports. Never imported when mixing.
"""
