"""An ML alpha as a candidate: a text with its own small grammar, stored like a formula.

A strategy's ``[ml]`` section asks for supervised models at every decision; each travels
through the pipeline as a candidate text beside the formulas (request, evaluation,
pool, allocation), and its text says everything its signal depends on::

    ml:lightgbm(features=[library, operands], lags=[0, 1], horizon=1, retrain=12, folds=3, seed=0)

``features`` are sets (``library``: the known factors valid on the panel, as their
per-asset values; ``operands``: its raw fields and series) or operand names (the pool's
alphas enter a learned model through ``combination.method`` instead: a candidate's
features must not depend on which earlier decisions have finished, or a replay's
decisions would depend on its speed);
``lags`` shift each feature back that many rows; ``horizon`` is the forward return
learnt; ``retrain`` the rows between the fits of the walked signal
(:mod:`.signal`); ``folds`` the purged cross-validation's (:mod:`.cv`); ``seed`` the
models'. Omitted keys take the defaults of :class:`MLCandidate`. The canonical text (every
key, in that order) is the candidate's identity, hashed like a formula's. Parsed by hand,
never evaluated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields

from alphafactory.formula import FormulaError, Node, formula_hash
from alphafactory.ml.fit import MLSpec
from alphafactory.ml.models import MODEL_NAMES

PREFIX = "ml:"
FEATURE_SETS = ("library", "operands")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(-?[0-9]+)|([\[\](),=]))")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PUNCTUATION = frozenset("[](),=")


class MLCandidateError(FormulaError):
    """A candidate text that is not a valid ML alpha; the message names the bad part."""


@dataclass(frozen=True)
class MLCandidate:
    model: str
    features: tuple[str, ...] = ("library",)
    lags: tuple[int, ...] = (0,)
    horizon: int = 1
    retrain: int = 12
    folds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise MLCandidateError(
                f"unknown model {self.model!r}; expected one of {', '.join(MODEL_NAMES)}"
            )
        bad = [name for name in self.features if not _NAME.match(name)]
        if not self.features or bad or len(set(self.features)) < len(self.features):
            raise MLCandidateError(
                f"features {list(self.features)}: expected distinct names, each a set "
                f"({', '.join(FEATURE_SETS)}) or an operand"
            )
        if not self.lags or min(self.lags) < 0 or len(set(self.lags)) < len(self.lags):
            raise MLCandidateError(
                f"lags {list(self.lags)}: expected distinct rows >= 0 (0: the date's value)"
            )
        for key in ("horizon", "retrain", "folds"):
            if getattr(self, key) < 1:
                raise MLCandidateError(f"{key} must be >= 1, got {getattr(self, key)}")

    @property
    def text(self) -> str:
        """The canonical text: every key, in the dataclass's order."""
        return f"{PREFIX}{self.model}({', '.join(_argument(self, f.name) for f in _KEYS)})"

    def spec(self) -> MLSpec:
        return MLSpec(self.model, horizon=self.horizon, folds=self.folds, seed=self.seed)

    def __str__(self) -> str:
        return self.text


_KEYS = [f for f in fields(MLCandidate) if f.name != "model"]


def _argument(candidate: MLCandidate, key: str) -> str:
    value = getattr(candidate, key)
    if isinstance(value, tuple):
        return f"{key}=[{', '.join(map(str, value))}]"
    return f"{key}={value}"


def is_ml(text: str | Node) -> bool:
    return isinstance(text, str) and text.lstrip().startswith(PREFIX)


def parse_candidate(text: str) -> MLCandidate:
    """The candidate of an ``ml:MODEL(key=value, ...)`` text (module doc)."""
    body = text.strip()
    if not body.startswith(PREFIX):
        raise MLCandidateError(f"an ML alpha starts with {PREFIX!r}, got {text!r}")
    tokens = _tokens(body[len(PREFIX) :], text)
    model = tokens.pop(0) if tokens and _NAME.match(tokens[0]) else None
    bare = model is not None and not tokens  # ml:MODEL, every key its default
    if model is None or not bare and (tokens[0] != "(" or tokens[-1] != ")"):
        raise MLCandidateError(f"expected ml:MODEL(key=value, ...), got {text!r}")
    return MLCandidate(model, **_arguments(tokens[1:-1], text))


def _tokens(body: str, text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(body.rstrip()):
        match = _TOKEN.match(body, position)
        if match is None:
            raise MLCandidateError(
                f"unexpected {body[position:].strip()[:1]!r} in {text!r}",
                column=len(PREFIX) + position + 1,
            )
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


def _arguments(tokens: list[str], text: str) -> dict:
    """``key=value`` pairs separated by commas; a value is a name, an integer or a
    bracketed list of them."""
    known = {f.name: f for f in _KEYS}
    values: dict = {}
    position = 0
    while position < len(tokens):
        key = tokens[position]
        if key not in known:
            raise MLCandidateError(f"unknown key {key!r} in {text!r}; expected {', '.join(known)}")
        if key in values:
            raise MLCandidateError(f"key {key!r} given twice in {text!r}")
        if position + 2 > len(tokens) or tokens[position + 1] != "=":
            raise MLCandidateError(f"expected {key}=VALUE in {text!r}")
        items, position = _value(tokens, position + 2, text)
        values[key] = _typed(key, items, text)
        if position < len(tokens):
            if tokens[position] != ",":
                raise MLCandidateError(f"expected ',' after {key}=... in {text!r}")
            position += 1
    return values


def _value(tokens: list[str], position: int, text: str) -> tuple[list[str], int]:
    if position < len(tokens) and tokens[position] == "[":
        end = tokens.index("]", position) if "]" in tokens[position:] else -1
        if end < 0:
            raise MLCandidateError(f"a list is not closed with ']' in {text!r}")
        inner = tokens[position + 1 : end]
        items = inner[0::2]
        if any(t != "," for t in inner[1::2]) or (inner and inner[-1] == ","):
            raise MLCandidateError(f"list items are separated by ',' in {text!r}")
        return items, end + 1
    if position >= len(tokens) or tokens[position] in _PUNCTUATION:
        raise MLCandidateError(f"a value is missing in {text!r}")
    return [tokens[position]], position + 1


def _typed(key: str, items: list[str], text: str):
    listed = key in ("features", "lags")
    if not listed and len(items) != 1:
        raise MLCandidateError(f"{key} takes one integer, got {items} in {text!r}")
    if key == "features":
        return tuple(items)
    try:
        numbers = tuple(int(item) for item in items)
    except ValueError:
        raise MLCandidateError(f"{key} takes integers, got {items} in {text!r}") from None
    return numbers if listed else numbers[0]


def canonical_candidate(text: str | Node) -> str:
    """The canonical text of a formula or an ML alpha."""
    if is_ml(text):
        return parse_candidate(text).text
    from alphafactory.formula import canonical

    return canonical(text)


def candidate_hash(text: str | Node) -> str:
    """A candidate's identity: :func:`~alphafactory.formula.formula_hash` for a formula,
    the SHA-256 of the canonical text for an ML alpha (the same scheme)."""
    if is_ml(text):
        return hashlib.sha256(parse_candidate(text).text.encode("utf-8")).hexdigest()
    return formula_hash(text)
