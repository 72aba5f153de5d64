"""The local Triton Inference Server: PyTriton's bundled tritonserver with our models.

It serves the exported generator of every model folder in the repository (written by
``alphafactory model export``) under the folder's name, with the tensors of its
``config.pbtxt``: the same names, types, shapes and batching as production, so the client
is identical. Production runs ONNX Runtime inside tritonserver; PyTriton's wheel ships only
the python backend, so here ONNX Runtime runs inside the bound function on the same
``model.onnx``. A tiny health model (FP32 echo) proves the python backend works even before
any generator is exported.

Run as ``python -m inference.triton_server --http HOST:PORT --grpc HOST:PORT ...``; the
stack manager starts it with LD_LIBRARY_PATH set (see deploy.local.components.Triton).
Models exported after start are served after ``alphafactory stack restart triton``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import numpy as np

from inference.repository import ServedModel, find_models

HEALTH_INPUT = "INPUT"
HEALTH_OUTPUT = "OUTPUT"
log = logging.getLogger("alphafactory.triton")


def _echo(**inputs: np.ndarray) -> dict[str, np.ndarray]:
    return {HEALTH_OUTPUT: inputs[HEALTH_INPUT].astype(np.float32, copy=False)}


def _onnx_function(model: ServedModel):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # one thread: on 2 cores a second thread against a busy core collapses throughput
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])
    output = model.outputs[0].name

    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {output: session.run([output], inputs)[0]}

    return infer


def serve(http: str, grpc: str, metrics_port: int, health: str, repository: Path | None) -> None:
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
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
    models = find_models(repository) if repository else []
    with Triton(config=config) as triton:
        triton.bind(
            model_name=health,
            infer_func=batch(_echo),
            inputs=[Tensor(name=HEALTH_INPUT, dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name=HEALTH_OUTPUT, dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=64),
            strict=True,
        )
        for model in models:
            tensors = [
                Tensor(name=t.name, dtype=t.numpy_dtype, shape=t.dims)
                for t in (*model.inputs, *model.outputs)
            ]
            triton.bind(
                model_name=model.name,
                model_version=model.version,
                infer_func=batch(_onnx_function(model)),
                inputs=tensors[: len(model.inputs)],
                outputs=tensors[len(model.inputs) :],
                config=ModelConfig(
                    max_batch_size=model.max_batch_size,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=model.queue_delay_us),
                ),
                strict=True,
            )
            log.info("serving %s version %d from %s", model.name, model.version, model.onnx)
        triton.serve()


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
