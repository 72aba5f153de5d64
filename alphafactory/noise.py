"""What noise alone would admit: a decision's noise twin. Pure.

Every result the factory reports states how many candidates it tried and what noise alone
would have produced under the same rule. The rule is the strategy's (its definition, any
expression over the metrics, and its multiple-testing control), so the noise rate is
measured the way the rule is applied: each decision's candidates are scored a second time
on its *noise twin*, the decision's panel with the rows of every market field put in a
random order (one permutation of the dates, the same for every field and every
candidate of the decision). Each asset keeps its returns and the cross-section of each
row stays whole; the macro series, the dates and the groups stay in place. So nothing a
candidate reads can tell it the return that follows, which is the null, and the twin keeps
what makes a candidate look good by chance on this data (its fat tails, its volatility,
the cross-sectional correlation of its returns).

The definition and the control over the twin's scores give the decision's noise-alone
counts (stored with its admission, ``core.admissions.noise_qualified`` and
``noise_admitted``); the walk-forward report sums them beside each hit rate.
"""

from __future__ import annotations

import hashlib

import numpy as np

from alphafactory.panel import Panel


def twin_seed(request_id: str) -> int:
    """The permutation's seed for a request: the same for every chunk and every retry."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")


def noise_twin(panel: Panel, seed: int) -> Panel:
    """``panel`` with its market rows permuted by a permutation drawn from ``seed`` (the
    module doc); its dates, macro series and groups as they were."""
    order = np.random.default_rng(seed).permutation(panel.shape[0])
    fields = {name: values[order] for name, values in panel.fields.items()}
    return Panel(panel.dates, panel.assets, fields, dict(panel.macro), dict(panel.groups))
