"""Export a generator checkpoint as a versioned Triton model repository.

    <repository>/<model>/config.pbtxt              ONNX Runtime backend, dynamic batching,
                                                   the versions served and their cutoffs
    <repository>/<model>/<version>/model.onnx      the next-action network
    <repository>/<model>/<version>/generator.json  vocabulary, context, reward, cutoff
    <repository>/<model>/generator.json            the newest version's (older clients)

Each trained generator is a new version beside the earlier ones; the config lists the
newest ``keep_versions`` of them, so Triton (explicit model control: a ``load`` of the
model after the export) serves those, each under its number.

The network is ``DecisionTransformer.next_action_logits``; the batch and the step axes
vary (1 to the model's context steps: a call sends only the steps so far; tensors:
``inference.repository``).
``config.pbtxt`` is the production configuration (GPU instances; ``instances="cpu"`` for a
CPU tritonserver); the local stack serves the same files through PyTriton with ONNX Runtime
inside the bound function (``inference.triton_server``), under the same name and tensors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from inference.model import DecisionTransformer
from inference.repository import (
    CONFIG_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ServingOptions,
    config_text,
    tensor_specs,
)
from inference.training import Checkpoint


class _NextAction(torch.nn.Module):
    """The exported graph: lengths arrive as (B, 1) so every tensor has a row dimension;
    besides the logits it answers their ``top_k`` largest (after the grammar mask) and
    their tokens, so a client need not fetch every logit."""

    def __init__(self, model: DecisionTransformer, top_k: int) -> None:
        super().__init__()
        self.model = model
        self.top_k = top_k

    def forward(self, rtg, features, actions, lengths, mask):
        logits = self.model.next_action_logits(rtg, features, actions, lengths[:, 0], mask)
        if not self.top_k:
            return logits
        top = torch.topk(logits, self.top_k, dim=-1, largest=True, sorted=True)
        return logits, top.values, top.indices.to(torch.int32)


def export_repository(checkpoint: Checkpoint, repository: Path, options: ServingOptions) -> Path:
    """Write version ``options.version`` of the model's folder in ``repository`` (the
    other versions stay); returns the ONNX file's path."""
    model = checkpoint.model.eval().float()
    config = model.config
    folder = Path(repository) / options.model_name
    version_dir = folder / str(options.version)
    staging = folder / f".{options.version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    top_k = min(options.top_k, config.vocab_size)
    export_onnx(model, staging / MODEL_FILE, top_k=top_k)
    metadata = generator_metadata(checkpoint) | {"top_k": top_k, "variable_steps": True}
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    shutil.rmtree(version_dir, ignore_errors=True)
    staging.rename(version_dir)  # a server polling the repository never sees half a model
    exported = _exported_versions(folder)
    served = dict(sorted(exported.items())[-options.keep_versions :])
    cutoffs = {version: meta.get("trained_until") for version, meta in served.items()}
    # one config serves every listed version: the top pair only if each of them has it
    shared_top_k = {meta.get("top_k", 0) for meta in served.values()}
    listed = options if shared_top_k == {top_k} else replace(options, top_k=0)
    # and a variable step axis only if each was exported with one
    variable = all(meta.get("variable_steps") for meta in served.values())
    text = config_text(
        config.context, config.vocab_size, listed, versions=cutoffs, variable_steps=variable
    )
    (folder / CONFIG_FILE).write_text(text)
    newest = max(exported)
    (folder / METADATA_FILE).write_text(json.dumps(exported[newest], indent=1))
    return version_dir / MODEL_FILE


def _exported_versions(folder: Path) -> dict[int, dict]:
    """version -> metadata of every complete version folder."""
    found = {}
    for path in folder.iterdir():
        if path.name.isdigit() and (path / MODEL_FILE).is_file():
            own = path / METADATA_FILE
            shared = folder / METADATA_FILE
            source = own if own.is_file() else shared
            found[int(path.name)] = json.loads(source.read_text()) if source.is_file() else {}
    return found


def export_onnx(model: DecisionTransformer, path: Path, *, top_k: int = 0) -> None:
    config = model.config
    batch = 2
    example = (
        torch.zeros(batch, config.context),
        torch.zeros(batch, config.context, 4, dtype=torch.int64),
        torch.full((batch, config.context), config.vocab_size, dtype=torch.int64),
        torch.ones(batch, 1, dtype=torch.int64),
        torch.ones(batch, config.vocab_size, dtype=torch.bool),
    )
    inputs, outputs = tensor_specs(config.vocab_size, top_k)
    names = [spec.name for spec in inputs]
    rows = torch.export.Dim("batch", min=1, max=1 << 20)
    steps = torch.export.Dim("steps", min=1, max=config.context)
    stepped = {"rtg", "features", "actions"}
    # the exporter reports progress on stdout, which belongs to the command's JSON output,
    # logs every graph pass at INFO and warns of optional packages: keep only its errors
    quiet = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(
            _NextAction(model, top_k).eval(),
            example,
            str(path),
            input_names=names,
            output_names=[spec.name for spec in outputs],
            dynamic_shapes={
                name: {0: rows, 1: steps} if name in stepped else {0: rows} for name in names
            },
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    for logger, level in zip(quiet, levels, strict=True):
        logger.setLevel(level)


def generator_metadata(checkpoint: Checkpoint) -> dict:
    """Everything a client needs besides the network: the vocabulary (to run the grammar),
    the context and the reward the model was conditioned on."""
    return {
        "context": checkpoint.model.config.context,
        "vocabulary": checkpoint.vocab.to_dict(),
        "reward": checkpoint.reward,
        "trained_until": until.isoformat() if (until := checkpoint.trained_until) else None,
        "root_kinds": checkpoint.provenance.get("plan", {}).get("root_kinds"),
    }
