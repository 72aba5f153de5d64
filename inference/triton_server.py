"""The local Triton Inference Server: PyTriton's bundled tritonserver with our models.

It serves the exported generator of every model folder in the repository (written by
``alphafactory model export``) under the folder's name, with the tensors of its
``config.pbtxt``: the same names, types, shapes and batching as production, so the client
is identical. Production runs ONNX Runtime inside tritonserver; PyTriton's wheel ships only
the python backend, so here ONNX Runtime runs inside the bound function on the same
``model.onnx``. A tiny health model (FP32 echo) proves the python backend works even before
any generator is exported.

Versions: production Triton serves every version a model's config lists under the
model's name and the version's number. PyTriton writes one config per model name, so two
versions cannot share one here: each listed version is served as ``<name>_v<N>``
(``repository.versioned_name``; the client asks for that name when
``triton.version_names`` is "suffixed"), and ``<name>`` itself is the newest version at
start. The server watches the repository and serves a version exported while it runs
within ``WATCH_INTERVAL_S`` (the trainer waits for it to be ready).

Run as ``python -m inference.triton_server --http HOST:PORT --grpc HOST:PORT ...``; the
stack manager starts it with LD_LIBRARY_PATH set (see deploy.local.components.Triton).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np

from inference.repository import ServedModel, find_models, find_versions, versioned_name

HEALTH_INPUT = "INPUT"
HEALTH_OUTPUT = "OUTPUT"
log = logging.getLogger("alphafactory.triton")
WATCH_INTERVAL_S = 1.0


def _echo(**inputs: np.ndarray) -> dict[str, np.ndarray]:
    return {HEALTH_OUTPUT: inputs[HEALTH_INPUT].astype(np.float32, copy=False)}


def _onnx_function(model: ServedModel):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # one thread: on 2 cores a second thread against a busy core collapses throughput
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])
    outputs = [spec.name for spec in model.outputs]
    context = int(model.metadata.get("context", 0))

    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        steps = inputs["actions"].shape[1]
        if context and steps > context:  # PyTriton's config cannot say it: the client learns here
            raise ValueError(f"{steps} steps sent, more than {model.name}'s context {context}")
        # every declared output: the top pair costs a top-k over the logits already there,
        # and Triton sends back only the outputs a request asked for
        return dict(zip(outputs, session.run(outputs, inputs), strict=True))

    return infer


def serve(http: str, grpc: str, metrics_port: int, health: str, repository: Path | None) -> None:
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    http_host, _, http_port = http.rpartition(":")
    grpc_host, _, grpc_port = grpc.rpartition(":")
    config = TritonConfig(
        http_address=http_host,
        http_port=int(http_port),
        grpc_address=grpc_host,
        grpc_port=int(grpc_port),
        metrics_port=metrics_port,
        allow_metrics=True,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=health,
            infer_func=batch(_echo),
            inputs=[Tensor(name=HEALTH_INPUT, dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name=HEALTH_OUTPUT, dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=64),
            strict=True,
        )
        bound: set[str] = set()
        for model in find_models(repository) if repository else []:
            _bind(triton, model, model.name, bound)
        _bind_new_versions(triton, repository, bound)
        triton.connect()
        while triton.is_alive():
            time.sleep(WATCH_INTERVAL_S)
            _bind_new_versions(triton, repository, bound)


def _bind_new_versions(triton, repository: Path | None, bound: set[str]) -> None:
    """Serve every listed version not served yet (a generator exported after start)."""
    from inference.repository import RepositoryError

    try:
        versions = find_versions(repository) if repository else []
    except RepositoryError as error:  # a folder being written: next round
        log.warning("model repository: %s", error)
        return
    for model in versions:
        name = versioned_name(model.name, model.version)
        if name not in bound:
            if model.name not in bound:  # a new generator: its plain name too
                _bind(triton, model, model.name, bound)
            _bind(triton, model, name, bound)


def _bind(triton, model: ServedModel, name: str, bound: set[str]) -> None:
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    tensors = [
        Tensor(name=t.name, dtype=t.numpy_dtype, shape=t.dims)
        for t in (*model.inputs, *model.outputs)
    ]
    triton.bind(
        model_name=name,
        infer_func=batch(_onnx_function(model)),
        inputs=tensors[: len(model.inputs)],
        outputs=tensors[len(model.inputs) :],
        config=ModelConfig(
            max_batch_size=model.max_batch_size,
            batcher=DynamicBatcher(max_queue_delay_microseconds=model.queue_delay_us),
        ),
        strict=True,
    )
    bound.add(name)
    log.info("serving %s as %s from %s", model.name, name, model.onnx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", required=True, help="HOST:PORT for Triton's HTTP endpoint")
    parser.add_argument("--grpc", required=True, help="HOST:PORT for Triton's gRPC endpoint")
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--model", required=True, help="name of the health model")
    parser.add_argument(
        "--repository", type=Path, default=None, help="model repository with exported generators"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # SIGTERM becomes KeyboardInterrupt so Triton's context manager shuts the server down.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(args.http, args.grpc, args.metrics_port, args.model, args.repository)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
