"""Supervised alphas: a model learns next returns from point-in-time features.

The pure core of the ML alphas (issue 15), no I/O: features standardised across assets
(:mod:`.features`), time-series cross-validation with a purge and an embargo
(:mod:`.cv`), the models (:mod:`.models`) and the fit that chooses a model's
hyperparameters inside its training window and predicts the decision dates
(:mod:`.fit`). A model's prediction is a signal like a formula's value: the same metrics
and the same alpha definition judge it.
"""
