"""The local Triton Inference Server (PyTriton's bundled tritonserver) with a health model.

Until the generator is exported, the embedded stack serves one tiny model so that the
server, the python backend and the client path are exercised for real: it returns its
FP32 input unchanged, with a dynamic batch dimension. Run as
``python -m inference.health_server --http HOST:PORT --grpc HOST:PORT ...``; the stack
manager starts it with LD_LIBRARY_PATH set (see deploy.local.components.Triton).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import numpy as np

HEALTH_INPUT = "INPUT"
HEALTH_OUTPUT = "OUTPUT"


def _echo(**inputs: np.ndarray) -> dict[str, np.ndarray]:
    return {HEALTH_OUTPUT: inputs[HEALTH_INPUT].astype(np.float32, copy=False)}


def serve(http: str, grpc: str, metrics_port: int, model: str) -> None:
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
        # Production loads models explicitly; so does the local server.
        allow_metrics=True,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=model,
            infer_func=batch(_echo),
            inputs=[Tensor(name=HEALTH_INPUT, dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name=HEALTH_OUTPUT, dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=64),
            strict=True,
        )
        triton.serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", required=True, help="HOST:PORT for Triton's HTTP endpoint")
    parser.add_argument("--grpc", required=True, help="HOST:PORT for Triton's gRPC endpoint")
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--model", required=True, help="name of the health model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # SIGTERM becomes KeyboardInterrupt so Triton's context manager shuts the server down.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(args.http, args.grpc, args.metrics_port, args.model)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
