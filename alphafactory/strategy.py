"""Strategies: what to search, what counts as an alpha, how to combine and allocate, and
which releases trigger it. One TOML file per strategy; ``load_strategy`` validates it and
names the bad key and value. The bundled default is ``strategies/macro_allocation.toml``.

A strategy's sections (every key has a default except ``id``)::

    id = "macro_allocation"          # letters, digits, _ and -
    active = true
    [universe]    data = "bundled"   # or "store" (loaded data); assets = [] (all),
                  group = "" and group_codes = [] (the assets of a stored group's codes),
                  stale_after = 3 (a series with no release for 3 times its cadence is
                  missing, not carried forward)
    [formulas]    root_kinds = ["macro"], max_tokens = 12, operands = [] (all),
                  include = [] (formulas of your own, see below)
    [alpha]       definition = "hac_tstat >= 2" (over the metrics of the position the
                  strategy would trade from the candidate: a tilt's or long-only book's
                  active return, a long-short one's quantile long-short, see
                  alphafactory.traded), target = "hac_tstat=3",
                  training_months = 120 (the look-back scored at each decision),
                  control = "by" (by | bh | holm | bonferroni | none: the
                  multiple-testing control over each decision's trials, see
                  alphafactory.admission), level = 0.10 (its false discovery rate or
                  family-wise error rate), noise_twin = true (also score each
                  decision's candidates on its noise twin: what the same rule admits
                  from noise alone, see alphafactory.noise)
    [generation]  candidates = 1000, chunk_size = 100, temperature = 1.0, top_k = 0
                  (sample from the top_k most likely tokens; 0: every valid one),
                  generator = "" (the default generator, or a name of the strategy's own),
                  retrain_every_months = 0 (or N: once N months have passed since the
                  newest version's cutoff, a request asks the trainer for a new one),
                  source = "model" (or "random" / "library": the baselines, see
                  inference.baselines; set by the variants of those names)
    [pool]        size = 25, max_correlation = 0.7, retire_after = 12,
                  retire_below = 0.0, retire_t = -1.0 and probation = 6 (the pool persists;
                  a member with retire_after periods of out-of-sample record retires when
                  its mean rank IC is not above retire_below and its t not above
                  retire_t; a member is traded once probation periods
                  of that record have a mean above retire_below, see alphafactory.pool)
    [ml]          models = [] (e.g. ["ridge", "lightgbm"]: a supervised alpha each, a
                  candidate of every request), features = ["library"], lags = [0],
                  horizon = 1, retrain_every = 12, folds = 3, seed = 0 (see below)
    [combination] method = "ic_weighted" (a method of alphafactory.combinations: equal |
                  ic_weighted | ridge | lightgbm), ridge_alpha = 1.0
    [portfolio]   kind = "long_short" (a construction of alphafactory.constructions:
                  long_short | long_only | tilt), gross = 1.0, net = 0.0 and
                  name_limit = 1.0 (the books), tilt_limit = 0.1, tracking_error =
                  0.03, class_limit = 0.1 (the tilt), risk_aversion = 1.0,
                  information_coefficient = 0.05, volatility_months = 36 (each
                  construction's decision optimises these forecasts: alphafactory.optimiser)
    [triggers]    series = ["us_core_cpi", ...] (a release of any triggers a rebalance),
                  schedule = "" (or "monthly": a request at each month end),
                  market = "" (or "period_close": once all of the universe's market.data
                  for a date has arrived, or market_timeout_s = 3600 after the first)
    [rebalance]   min_days_between = 20 (later releases in that window are skipped)
    [variants]    names = [] (e.g. ["pool10", "pool100", "random", "risk_parity"]: each
                  also written under strategy id "<id>@<name>", see
                  alphafactory.variants), stocks = [] and bonds = [] (the 60_40 mix)

``[formulas] include`` lists formulas the strategy evaluates at every decision besides the
generated ones, e.g. a known factor of your own::

    [formulas]
    include = ["zscore((close - ts_min(low, 14)) / (ts_max(high, 14) - ts_min(low, 14)))"]

Each is checked when the file loads with the formula grammar: syntax, operators, size
limits, and windows / lags from 1 to ``LanguageConfig.max_window`` (1,000), not only the
generator's sets. Operand names can only be checked against the data, at evaluation.
``strategy.formulas.include`` holds their canonical texts (their identity), each once, in
file order.

``[ml] models`` adds a supervised alpha per model to every request
(``alphafactory.ml.candidate``): it learns the ``horizon``-period forward return from the
``features`` (``library``: the known factors' values, ``operands``: the raw fields and
series, or operand names) at each of the ``lags``, hyperparameters chosen by purged
time-series cross-validation (``folds``) on the labels known at each fit; its signal over
the scored window is walked forward (a fit every ``retrain_every`` rows, each predicting
only later rows), so the alpha definition judges out-of-sample values, as a formula's.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alphafactory import combinations, constructions, variant_names
from alphafactory.admission import DEFAULT_CONTROL, DEFAULT_LEVEL, Control
from alphafactory.data.releases import STALE_AFTER_CADENCES
from alphafactory.formula import FormulaError, canonical
from alphafactory.metrics import parse_definition
from alphafactory.metrics.errors import DefinitionError
from alphafactory.ml.candidate import FEATURE_SETS, MLCandidate
from alphafactory.ml.models import MODEL_NAMES

BUNDLED_DIR = Path(__file__).resolve().parent / "strategies"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class StrategyError(ValueError):
    """A strategy file that cannot be used; the message names the file, key and value."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Universe(_Section):
    # bundled: the dataset shipped with the package (its series are known in advance);
    # store: whatever has been loaded into Postgres (``alphafactory data load``)
    data: Literal["bundled", "store"] = "bundled"
    assets: tuple[str, ...] = ()  # empty: every stored asset
    # a stored group (a panel column ``group:<name>`` of integer codes): only the assets
    # whose code on the decision date is one of group_codes
    group: str = ""
    group_codes: tuple[int, ...] = ()
    # a macro series with no release for this many times its cadence (the median spacing
    # of its periods) is missing at a decision, not carried forward as if current
    stale_after: float = Field(STALE_AFTER_CADENCES, ge=1.0, le=1000.0)
    # the universe's cash asset, if it has one: its return is the risk-free rate that
    # reports measure Sharpe ratios over (``sharpe_over_cash``)
    cash: str = ""
    # what the data cannot show (survivorship, revised values...): stated in every report
    caveats: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _group_with_codes(self) -> Universe:
        if bool(self.group) != bool(self.group_codes):
            raise ValueError(
                f"universe.group ({self.group!r}) and universe.group_codes "
                f"({list(self.group_codes)}) go together: name the group and its codes"
            )
        return self


def _formula(text: str) -> str:
    """The canonical text of one included formula; the parser's message if it is not one."""
    try:
        return canonical(text)
    except FormulaError as e:
        raise ValueError(f"not a formula: {e}") from e


class Formulas(_Section):
    root_kinds: tuple[Literal["macro", "panel"], ...] = ("macro",)
    max_tokens: int = Field(12, ge=3, le=64)
    operands: tuple[str, ...] = ()
    include: tuple[Annotated[str, AfterValidator(_formula)], ...] = ()

    @field_validator("include")
    @classmethod
    def _once_each(cls, formulas: tuple[str, ...]) -> tuple[str, ...]:
        # two spellings of one formula are one formula (one canonical text, one identity)
        return tuple(dict.fromkeys(formulas))


class Alpha(_Section):
    definition: str = "hac_tstat >= 2"
    target: str = "hac_tstat=3"
    training_months: int = Field(120, ge=12, le=1200)
    # an alpha meets the definition AND survives this control over the decision's trials;
    # on by default, so a file that says nothing about it is still controlled
    control: Control = DEFAULT_CONTROL
    level: float = Field(DEFAULT_LEVEL, gt=0, lt=1)
    # each decision's candidates are scored a second time on its noise twin (the market
    # rows in a random order, alphafactory.noise): what the same definition and control
    # admit there is what noise alone would have, stored beside each admission
    noise_twin: bool = True

    @field_validator("definition")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_definition(text)
        except DefinitionError as e:
            raise ValueError(str(e)) from e
        return text

    @field_validator("target")
    @classmethod
    def _metric_equals_number(cls, text: str) -> str:
        name, sep, number = text.partition("=")
        try:
            float(number)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError("target must look like METRIC=NUMBER, e.g. hac_tstat=3")
        return text


class Generation(_Section):
    candidates: int = Field(1000, ge=1, le=1_000_000)
    chunk_size: int = Field(100, ge=1, le=10_000)
    temperature: float = Field(1.0, gt=0, le=10)
    # sample each token from the top_k most likely only (0: every valid token); Triton
    # then answers just those top_k logits when its model serves a top pair that large
    top_k: int = Field(0, ge=0, le=10_000)
    # the generator this strategy samples from: "" the default one, or a name of its own
    # (trained on its data by `model train --strategy ID`, served beside the default)
    generator: str = Field("", pattern=r"^[a-z0-9_]{0,40}$")
    # retrain the generator every N months of decisions (0: only by hand); each new
    # version is trained on data released before its cutoff (app.trainer)
    retrain_every_months: int = Field(0, ge=0, le=120)
    # where candidates come from: the trained generator, or a baseline at equal count
    source: Literal["model", "random", "library"] = "model"


class ML(_Section):
    models: tuple[Literal[MODEL_NAMES], ...] = ()  # type: ignore[valid-type]
    features: tuple[str, ...] = ("library",)
    lags: tuple[int, ...] = (0,)
    horizon: int = Field(1, ge=1, le=120)
    retrain_every: int = Field(12, ge=1, le=1200)
    folds: int = Field(3, ge=1, le=20)
    seed: int = 0

    @model_validator(mode="after")
    def _candidates_valid(self) -> ML:
        self.candidates()  # MLCandidateError (a ValueError) names the bad key
        return self

    def candidates(self) -> tuple[str, ...]:
        """The canonical text of each model's candidate, in ``models`` order, once each."""
        texts = (
            MLCandidate(
                model,
                features=self.features,
                lags=self.lags,
                horizon=self.horizon,
                retrain=self.retrain_every,
                folds=self.folds,
                seed=self.seed,
            ).text
            for model in self.models
        )
        return tuple(dict.fromkeys(texts))


class Pool(_Section):
    size: int = Field(25, ge=1, le=10_000)
    max_correlation: float = Field(0.7, gt=0, le=1)
    # the pool persists across decisions (alphafactory.pool): a member with at least
    # retire_after periods of out-of-sample record retires when its mean out-of-sample
    # rank IC is not above retire_below and that mean's HAC t is not above retire_t
    # (the record is evidence against it; alphafactory.pool says why not the mean alone)
    retire_after: int = Field(12, ge=1, le=1200)
    retire_below: float = Field(0.0, ge=-1, le=1)
    retire_t: float = Field(-1.0, ge=-10, le=10)
    # an alpha is traded only after probation periods of out-of-sample record with a mean
    # rank IC above retire_below (0: from its admission)
    probation: int = Field(6, ge=0, le=1200)


def _registered(lookup):
    """A validator: the value must name an entry of a registry (``lookup`` raises,
    naming every registered one)."""

    def check(name: str) -> str:
        lookup(name)
        return name

    return AfterValidator(check)


class Combination(_Section):
    # a method of alphafactory.combinations (lightgbm: a model learns the next return
    # from the pool's signals)
    method: Annotated[str, _registered(combinations.combination)] = "ic_weighted"
    ridge_alpha: float = Field(1.0, gt=0)


class Portfolio(_Section):
    # a construction of alphafactory.constructions
    kind: Annotated[str, _registered(constructions.construction)] = "long_short"
    gross: float = Field(1.0, gt=0, le=10)
    # long_short's decision: the book's net weight (its sum; |net| <= gross); long_short's
    # and long_only's decisions: the largest |weight| of one asset
    net: float = Field(0.0, ge=-10, le=10)
    name_limit: float = Field(1.0, gt=0, le=10)
    # tilt: the largest move of one asset from the benchmark (and no more than the
    # asset's benchmark weight either way: alphafactory.optimiser says why)
    tilt_limit: float = Field(0.1, ge=0, le=1)
    # tilt: the annual tracking-error budget, the largest move of one asset class
    # (risk_parity_group's) from the benchmark, the risk aversion of the objective and
    # the information coefficient that turns a standardised signal into a forecast
    tracking_error: float = Field(0.03, gt=0, le=1)
    class_limit: float = Field(0.1, gt=0, le=1)
    risk_aversion: float = Field(1.0, ge=0, le=1e6)
    information_coefficient: float = Field(0.05, gt=0, le=1)
    # the window of the risk parity's volatilities and of the tilt's shrunk covariance
    volatility_months: int = Field(36, ge=3, le=600)
    # the benchmark's risk parity: by a panel group (equal risk per class, inverse
    # volatility inside it) when named; assets in benchmark_excludes get no benchmark
    # weight (cash, say: a tilt can still move into them)
    risk_parity_group: str = ""
    benchmark_excludes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _net_within_gross(self) -> Portfolio:
        if abs(self.net) > self.gross:
            raise ValueError(
                f"portfolio.net {self.net:g} is more than the book's gross {self.gross:g}: "
                "expected |net| <= gross"
            )
        return self


class Costs(_Section):
    """Trading costs (alphafactory.costs) in basis points of the weight traded, one way:
    an asset's own rate, else its class's (the codes of the panel group ``group``),
    else ``default_bps``. The tilt pays them; reports show every figure gross and net."""

    default_bps: float = Field(10.0, ge=0, le=10_000)
    group: str = ""
    group_bps: dict[int, Annotated[float, Field(ge=0, le=10_000)]] = {}
    asset_bps: dict[str, Annotated[float, Field(ge=0, le=10_000)]] = {}

    @model_validator(mode="after")
    def _classes_have_a_group(self) -> Costs:
        if self.group_bps and not self.group:
            raise ValueError(
                f"costs.group_bps {self.group_bps} prices classes: name their panel group "
                "in costs.group (asset_class, say)"
            )
        return self


class Triggers(_Section):
    series: tuple[str, ...] = ()
    schedule: Literal["", "monthly"] = ""
    # period_close: decide once per observation date of market.data, when every asset of
    # the universe has reported, or market_timeout_s after the first report
    market: Literal["", "period_close"] = ""
    market_timeout_s: float = Field(3600.0, gt=0, le=7 * 86400)


class Rebalance(_Section):
    min_days_between: int = Field(20, ge=0, le=366)


class Variants(_Section):
    """The strategy's variants (``alphafactory.variants``), each written under its own
    strategy id ``<id>@<name>``."""

    names: tuple[str, ...] = ()
    stocks: tuple[str, ...] = ()  # the 60_40 variant's 60%
    bonds: tuple[str, ...] = ()  # and its 40%

    @field_validator("names")
    @classmethod
    def _known_once(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in names if not variant_names.is_variant(n)]
        if bad:
            raise ValueError(f"unknown variants {bad}: expected {variant_names.names_help()}")
        return tuple(dict.fromkeys(names))

    @model_validator(mode="after")
    def _sixty_forty_has_assets(self) -> Variants:
        if "60_40" in self.names and not (self.stocks and self.bonds):
            raise ValueError("the 60_40 variant needs [variants] stocks = [...] and bonds = [...]")
        return self


class Strategy(_Section):
    id: str
    active: bool = True
    description: str = ""
    universe: Universe = Universe()
    formulas: Formulas = Formulas()
    alpha: Alpha = Alpha()
    generation: Generation = Generation()
    ml: ML = ML()
    pool: Pool = Pool()
    combination: Combination = Combination()
    portfolio: Portfolio = Portfolio()
    costs: Costs = Costs()
    triggers: Triggers = Triggers()
    rebalance: Rebalance = Rebalance()
    variants: Variants = Variants()

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("id must be 1-64 letters, digits, _ or -, starting alphanumeric")
        return value

    @model_validator(mode="after")
    def _triggers_exist(self) -> Strategy:
        """A trigger on a series that never comes would leave the strategy silent."""
        if self.universe.data != "bundled":
            return self  # the store's series are checked against what is loaded
        from alphafactory.data.bundled import RELEASE_RULES

        unknown = sorted(set(self.triggers.series) - set(RELEASE_RULES))
        if unknown:
            raise ValueError(
                f"triggers.series names {unknown}, which the bundled data does not have "
                f"(its series: {', '.join(sorted(RELEASE_RULES))}); for series of your own, "
                'load them (`alphafactory data load`) and set [universe] data = "store"'
            )
        return self

    @model_validator(mode="after")
    def _ml_variants_have_models(self) -> Strategy:
        """A variant named by a model allocates the strategy's own ML alpha of that model."""
        missing = [
            name
            for name in self.variants.names
            if name in MODEL_NAMES and name not in self.ml.models
        ]
        if missing:
            raise ValueError(
                f"variants {missing} need their models in [ml] models (it has "
                f"{list(self.ml.models)}), e.g. models = {missing}"
            )
        return self

    def triggered_by(self, series_id: str) -> bool:
        return series_id in self.triggers.series


def load_strategy(path: str | Path) -> Strategy:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise StrategyError(f"strategy file {path} does not exist") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise StrategyError(f"strategy file {path} is not valid TOML: {e}") from e
    try:
        return Strategy.model_validate(data)
    except ValidationError as e:
        raise StrategyError(f"strategy file {path}: {_explain(e)}") from e


def load_strategies(directory: str | Path) -> list[Strategy]:
    """Every ``*.toml`` in ``directory``, sorted by id; two files with one id is an error."""
    strategies = [load_strategy(p) for p in sorted(Path(directory).glob("*.toml"))]
    ids = [s.id for s in strategies]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise StrategyError(f"strategy ids defined twice in {directory}: {duplicated}")
    return sorted(strategies, key=lambda s: s.id)


def active_strategies(directory: str | Path | None = None) -> list[Strategy]:
    """The active strategies of ``directory`` (None: the bundled ones)."""
    return [s for s in load_strategies(directory or BUNDLED_DIR) if s.active]


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        key = ".".join(str(p) for p in item["loc"])
        parts.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(parts)


def missing_inputs(
    strategy: Strategy,
    *,
    assets: set[str],
    fields: set[str],
    series: set[str],
    has_generator: bool,
) -> list[str]:
    """What ``strategy`` needs that is not stored (empty: it can run): given the stored
    assets, market fields (groups as ``group:<name>``) and macro series, and whether the
    generator checkpoint exists."""
    from alphafactory.observations import GROUP_PREFIX

    load = (
        "alphafactory data load --bundled"
        if strategy.universe.data == "bundled"
        else ("alphafactory data load --panel FILE")
    )
    if not assets:
        return [f"market data: nothing is stored ({load})"] + (
            [] if has_generator else ["a generator (alphafactory init)"]
        )
    missing = []
    if absent := sorted(set(strategy.universe.assets) - assets):
        missing.append(f"universe assets not stored: {', '.join(absent)}")
    group = strategy.universe.group
    if group and GROUP_PREFIX + group not in fields:
        missing.append(f"universe group {group!r} not stored (a {GROUP_PREFIX}{group} column)")
    if not {"returns", "close"} & fields:
        missing.append("a 'returns' or 'close' field (the allocation needs returns)")
    groups = {f.removeprefix(GROUP_PREFIX) for f in fields if f.startswith(GROUP_PREFIX)}
    if absent := sorted(set(strategy.formulas.operands) - fields - series - groups):
        missing.append(f"operands neither a stored field nor series: {', '.join(absent)}")
    named = [f for f in strategy.ml.features if f not in FEATURE_SETS] if strategy.ml.models else []
    if absent := sorted(set(named) - fields - series):
        missing.append(f"[ml] features neither a stored field nor series: {', '.join(absent)}")
    if "macro" in strategy.formulas.root_kinds and not series:
        missing.append("macro series for root_kinds 'macro' (alphafactory data load --releases)")
    if absent := sorted(set(strategy.triggers.series) - series):
        missing.append(f"trigger series with no stored release: {', '.join(absent)}")
    if not has_generator:
        missing.append(f"a generator (alphafactory init, or model train --strategy {strategy.id})")
    return missing
