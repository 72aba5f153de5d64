"""The generator's Triton model repository: its tensors, its config.pbtxt, and reading it back.

``config.pbtxt`` is written and read through Triton's own protobuf schema
(``tritonclient.grpc.model_config_pb2`` with protobuf's text format), so what we write is
what tritonserver parses. Tensors (names, types and per-row shapes; the batch dimension is
omitted, as Triton does when ``max_batch_size`` > 0):

    rtg       FP32  [-1]      return-to-go per step
    features  INT64 [-1, 4]   grammar state per step (GrammarState.features)
    actions   INT64 [-1]      tokens so far; padding = vocabulary size
    lengths   INT64 [1]       the step being chosen (1-based)
    mask      BOOL  [V]       the grammar's valid tokens at that step
    logits      FP32  [V]     output; invalid tokens at MASKED_LOGIT
    top_logits  FP32  [K]     output; the K largest logits, largest first
    top_tokens  INT32 [K]     output; their tokens

The step axis (-1) takes 1 to C steps, C the model's context (the config parameter
``context``): the network is causal, so a call at step ``t`` sends only the ``t`` steps so far
and costs what those steps cost, not C of them. Triton's dynamic batcher merges requests of
the same shape only, which the sampler's calls are (all its episodes are at one step).
A folder still serving a version exported before the axis was variable declares [C] (the
exporter decides, as for the top pair), and the client pads its calls to it.

A client asks for either ``logits`` or the top pair. The pair is what a GPU deployment
asks for: with the bundled 549-token vocabulary and K = 16 a row's answer is 128 bytes
instead of 2,196, so the client's cost per row (deserialising, copying, sampling) falls
with it. Sampling from the top K after the grammar mask is exact when K is at least the
number of valid tokens and a truncation (top-k sampling) otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"
METADATA_FILE = "generator.json"
INPUT_NAMES = ("rtg", "features", "actions", "lengths", "mask")
OUTPUT_NAME = "logits"
TOP_LOGITS = "top_logits"
TOP_TOKENS = "top_tokens"
OUTPUT_NAMES = (OUTPUT_NAME, TOP_LOGITS, TOP_TOKENS)
DEFAULT_TOP_K = 16
VARIABLE = -1  # a dimension of any size (Triton's -1)
CONTEXT_PARAMETER = "context"  # the config parameter with the step axis' largest size
_NUMPY = {
    pb.TYPE_FP32: np.float32,
    pb.TYPE_INT64: np.int64,
    pb.TYPE_INT32: np.int32,
    pb.TYPE_BOOL: np.bool_,
}


class RepositoryError(ValueError):
    """A model folder that is not a usable exported generator."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: int  # model_config_pb2.DataType
    dims: tuple[int, ...]  # per row

    @property
    def numpy_dtype(self) -> type:
        return _NUMPY[self.data_type]


def tensor_specs(
    vocab_size: int, top_k: int = DEFAULT_TOP_K, *, fixed_steps: int = 0
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's inputs and outputs; ``top_k`` = 0 for a model with logits only. The step
    axis is variable (its bound, the context, is the config parameter ``context``) unless
    ``fixed_steps`` > 0 (a folder still serving a version exported with a fixed one)."""
    steps = fixed_steps or VARIABLE
    inputs = [
        TensorSpec("rtg", pb.TYPE_FP32, (steps,)),
        TensorSpec("features", pb.TYPE_INT64, (steps, 4)),
        TensorSpec("actions", pb.TYPE_INT64, (steps,)),
        TensorSpec("lengths", pb.TYPE_INT64, (1,)),
        TensorSpec("mask", pb.TYPE_BOOL, (vocab_size,)),
    ]
    outputs = [TensorSpec(OUTPUT_NAME, pb.TYPE_FP32, (vocab_size,))]
    if top_k:
        outputs += [
            TensorSpec(TOP_LOGITS, pb.TYPE_FP32, (top_k,)),
            TensorSpec(TOP_TOKENS, pb.TYPE_INT32, (top_k,)),
        ]
    return inputs, outputs


@dataclass(frozen=True)
class ServingOptions:
    model_name: str = "alphafactory_generator"
    version: int = 1
    max_batch_size: int = 1024
    instances: str = "gpu"  # gpu: production; cpu: a CPU-only tritonserver
    instance_count: int = 1
    queue_delay_us: int = 500  # how long Triton may hold a request to grow a batch
    keep_versions: int = 3  # the newest versions the config lists (Triton serves them)
    top_k: int = DEFAULT_TOP_K  # the top pair's K; 0: logits only

    def __post_init__(self) -> None:
        if self.instances not in ("gpu", "cpu"):
            raise RepositoryError(f"instances must be gpu or cpu, got {self.instances!r}")
        if min(self.version, self.max_batch_size, self.instance_count, self.keep_versions) < 1:
            raise RepositoryError(
                "version, max_batch_size, instance_count and keep_versions must be >= 1"
            )
        if not 0 <= self.top_k <= 4096:
            raise RepositoryError(f"top_k must be between 0 and 4096, got {self.top_k}")
        if not self.model_name.replace("_", "").replace("-", "").isalnum():
            raise RepositoryError(f"model name {self.model_name!r}: letters, digits, _ and - only")


def config_text(
    context: int,
    vocab_size: int,
    options: ServingOptions,
    *,
    trained_until=None,
    versions: dict[int, str | None] | None = None,
    variable_steps: bool = True,
) -> str:
    """The production ``config.pbtxt`` (ONNX Runtime backend, dynamic batching). Triton
    serves the ``versions`` given (version -> training cutoff, ISO-8601; default: only
    ``options.version`` with ``trained_until``), and reports each cutoff as the config
    parameter ``trained_until.v<N>`` (the newest also as ``trained_until``), so a client
    knows what the version it calls saw. ``variable_steps`` False declares the step axis
    fixed at ``context`` (some listed version was exported so)."""
    config = pb.ModelConfig(
        name=options.model_name,
        platform="onnxruntime_onnx",
        max_batch_size=options.max_batch_size,
    )
    fixed_steps = 0 if variable_steps else context
    inputs, outputs = tensor_specs(
        vocab_size, min(options.top_k, vocab_size), fixed_steps=fixed_steps
    )
    for spec in inputs:
        config.input.add(name=spec.name, data_type=spec.data_type, dims=spec.dims)
    for spec in outputs:
        config.output.add(name=spec.name, data_type=spec.data_type, dims=spec.dims)
    largest = options.max_batch_size
    preferred = sorted({size for size in (64, 256, largest) if size <= largest})
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us
    group = pb.ModelInstanceGroup
    kind = group.KIND_GPU if options.instances == "gpu" else group.KIND_CPU
    config.instance_group.add(count=options.instance_count, kind=kind)
    if versions is None:
        versions = {options.version: trained_until.isoformat() if trained_until else None}
    config.parameters[CONTEXT_PARAMETER].string_value = str(context)
    config.version_policy.specific.versions.extend(sorted(versions))
    for version, until in sorted(versions.items()):
        if until:
            config.parameters[f"trained_until.v{version}"].string_value = until
            config.parameters["trained_until"].string_value = until  # the newest last
    return text_format.MessageToString(config)


@dataclass(frozen=True)
class ServedModel:
    """One exported generator as found in a repository."""

    name: str
    version: int
    onnx: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    queue_delay_us: int
    metadata: dict


def read_versions(folder: Path) -> list[ServedModel]:
    """Every version a model folder serves (its config's list), oldest first, each with
    its own metadata (``<version>/generator.json``; the folder's for older exports)."""
    try:
        config = text_format.Parse((folder / CONFIG_FILE).read_text(), pb.ModelConfig())
        shared = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError, text_format.ParseError) as error:
        raise RepositoryError(f"{folder} is not an exported generator: {error}") from None
    versions = list(config.version_policy.specific.versions) or sorted(
        int(p.name) for p in folder.iterdir() if p.name.isdigit()
    )
    if not versions:
        raise RepositoryError(f"{folder} has no model version")
    names = tuple(t.name for t in config.input)
    outputs = tuple(t.name for t in config.output)
    if names != INPUT_NAMES or outputs not in ((OUTPUT_NAME,), OUTPUT_NAMES):
        raise RepositoryError(
            f"{folder}: inputs {names} -> outputs {outputs}, expected {INPUT_NAMES} -> "
            f"{(OUTPUT_NAME,)} or {OUTPUT_NAMES}"
        )

    def specs(tensors) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(t.name, t.data_type, tuple(t.dims)) for t in tensors)

    served = []
    for version in sorted(versions):
        onnx = folder / str(version) / MODEL_FILE
        if not onnx.is_file():
            raise RepositoryError(f"{folder}: version {version} has no {MODEL_FILE}")
        own = folder / str(version) / METADATA_FILE
        served.append(
            ServedModel(
                name=config.name or folder.name,
                version=version,
                onnx=onnx,
                inputs=specs(config.input),
                outputs=specs(config.output),
                max_batch_size=config.max_batch_size,
                queue_delay_us=config.dynamic_batching.max_queue_delay_microseconds,
                metadata=json.loads(own.read_text()) if own.is_file() else shared,
            )
        )
    return served


def read_model(folder: Path) -> ServedModel:
    """The newest version of one model folder (checked as ``read_versions`` does)."""
    return read_versions(folder)[-1]


def model_folders(repository: Path) -> list[Path]:
    if not repository.is_dir():
        return []
    return [
        folder
        for folder in sorted(repository.iterdir())
        if folder.is_dir() and (folder / CONFIG_FILE).is_file()
    ]


def find_models(repository: Path) -> list[ServedModel]:
    """The newest version of every exported generator in ``repository``."""
    return [read_model(folder) for folder in model_folders(repository)]


def find_versions(repository: Path, newest: int | None = None) -> list[ServedModel]:
    """Every served version of every generator (only the ``newest`` few of each when
    given), by model name and version."""
    found = []
    for folder in model_folders(repository):
        versions = read_versions(folder)
        found.extend(versions[-newest:] if newest else versions)
    return found


def versioned_name(model_name: str, version: int) -> str:
    """The local server's name for one version of a model (PyTriton cannot serve two
    versions under one name: it writes one config per name), ``<name>_v<N>``."""
    return f"{model_name}_v{version}"
