"""Generator throughput on one GPU (issue 4, section 6): next-action rows/s in process and
through Triton, and training formulas/s. Target: 100,000 next-action rows/s on one
H100-class GPU.

    python benchmarks/generator_gpu.py [--quick] [--triton]

Runs on the device machine (its own python3 with CUDA PyTorch; PyTriton and tritonclient
carried as wheels, see benchmarks/GENERATOR.md). Inputs are real grammar states over a
500-series macro vocabulary (``generator.next_action_inputs``), tiled to the large batch
sizes. In-process rows/s counts the whole call a generation service makes: numpy in,
host-to-device copies, the forward pass and the logits back in numpy. Through Triton the
same model (bf16 torch on the GPU inside the PyTriton-bound function) is called by
``TritonPolicy`` over gRPC from several client threads at once.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time

import numpy as np
import torch
from generator import CONTEXT, bench_next_action, next_action_inputs

from alphafactory.formula import LanguageConfig, Vocabulary
from inference.model import DecisionTransformer, ModelConfig
from inference.sampling import InProcessPolicy
from inference.training import TrainConfig, train

SIZES = {  # name: (d_model, n_head, n_layer)
    "small (README: d64, 2 layers)": (64, 4, 2),
    "medium (d256, 4 layers)": (256, 8, 4),
    "large (d512, 8 layers)": (512, 8, 8),
}


def tiled_inputs(base: tuple[np.ndarray, ...], batch: int) -> tuple[np.ndarray, ...]:
    reps = -(-batch // len(base[0]))
    return tuple(np.concatenate([a] * reps)[:batch] for a in base)


def bench_in_process(models, vocab, sizes, calls, rng) -> None:
    for name, model in models.items():
        for bf16 in (False, True):
            policy = InProcessPolicy(model, "cuda", bf16=bf16)
            label = f"in process, {name}, {'bf16' if bf16 else 'fp32'}"
            base = next_action_inputs(vocab, 4096, rng)[:5]

            def tiled(batch, base=base):
                return tiled_inputs(base, batch)

            bench_next_action(policy, vocab, sizes, calls, rng, label, inputs=tiled)


def bench_training(vocab, rng, steps: int, batches) -> None:
    data = next_action_inputs(vocab, 16_384, rng)[-1]
    print(f"training (bf16 autocast, AdamW fused), {len(data):,} trajectories on the GPU")
    warm = ModelConfig(vocab_size=len(vocab), context=CONTEXT, d_model=64, n_head=4, n_layer=2)
    train(data, None, warm, TrainConfig(steps=5, eval_every=5, warmup_steps=1, device="cuda"))
    for name, (d_model, n_head, n_layer) in SIZES.items():
        config = ModelConfig(
            vocab_size=len(vocab), context=CONTEXT, d_model=d_model, n_head=n_head, n_layer=n_layer
        )
        for batch in batches:
            result = train(
                data,
                None,
                config,
                TrainConfig(
                    steps=steps, batch_size=batch, eval_every=steps, warmup_steps=10, device="cuda"
                ),
            )
            print(
                f"  {name:32s} batch {batch:5d}: {result.rows_per_second:12,.0f} formulas/s "
                f"({steps} steps in {result.seconds:.1f} s)"
            )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_triton(model, vocab, batches, clients_list, seconds: float, rng) -> None:
    """Serve ``model`` (bf16, GPU) with PyTriton under the generator's tensor names and call
    it with ``TritonPolicy`` from ``clients`` threads for ``seconds`` per cell."""
    from pytriton.decorators import batch as batched
    from pytriton.model_config import DynamicBatcher, Tensor
    from pytriton.model_config import ModelConfig as TritonModelConfig
    from pytriton.triton import Triton, TritonConfig

    from deploy.local.binaries import python_library_dir
    from inference.repository import INPUT_NAMES, OUTPUT_NAME, ServingOptions, tensor_specs

    # as the stack's Triton component does: PyTriton's backend stub links this libpython
    library_path = os.environ.get("LD_LIBRARY_PATH", "")
    os.environ["LD_LIBRARY_PATH"] = f"{python_library_dir()}:{library_path}"

    policy = InProcessPolicy(model, "cuda", bf16=True)
    grpc = _free_port()
    config = TritonConfig(http_port=_free_port(), grpc_port=grpc, metrics_port=_free_port())
    max_batch = max(batches)
    inputs, (output,) = tensor_specs(len(vocab), top_k=0)
    with Triton(config=config) as triton:
        triton.bind(
            model_name="generator",
            infer_func=batched(lambda **t: {OUTPUT_NAME: policy(*(t[n] for n in INPUT_NAMES))}),
            inputs=[Tensor(name=t.name, dtype=t.numpy_dtype, shape=t.dims) for t in inputs],
            outputs=[Tensor(name=output.name, dtype=output.numpy_dtype, shape=output.dims)],
            config=TritonModelConfig(
                max_batch_size=max_batch,
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=ServingOptions().queue_delay_us
                ),
            ),
            strict=True,
        )
        triton.run()
        base = next_action_inputs(vocab, 4096, rng)[:5]
        print(f"through Triton (PyTriton, torch bf16 on the GPU, gRPC), {seconds:.0f} s per cell")
        print("   batch  clients   p50 ms   p99 ms        rows/s")
        for batch in batches:
            for clients in clients_list:
                _triton_cell(grpc, tiled_inputs(base, batch), batch, clients, seconds)


def _triton_cell(port: int, inputs, batch: int, clients: int, seconds: float) -> None:
    from inference.triton_client import TritonPolicy

    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        policy = TritonPolicy(f"127.0.0.1:{port}", "generator", context=CONTEXT, timeout_s=60)
        policy(*inputs)  # warm-up
        mine, deadline = [], time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            policy(*inputs)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p50, p99 = np.percentile(latencies, [50, 99])
    rows = batch * len(latencies) / seconds
    print(f"  {batch:6d} {clients:8d} {1e3 * p50:8.2f} {1e3 * p99:8.2f} {rows:13,.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--triton", action="store_true", help="also through PyTriton")
    parser.add_argument("--triton-only", action="store_true", help="only the Triton figures")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU machine")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    rng = np.random.default_rng(0)
    operands = {f"M{k:04d}": "macro" for k in range(40 if args.quick else 500)}
    vocab = Vocabulary(operands | {"returns": "panel"}, LanguageConfig.monthly())
    models = {
        name: DecisionTransformer(
            ModelConfig(
                vocab_size=len(vocab), context=CONTEXT, d_model=d, n_head=h, n_layer=n, dropout=0.0
            )
        )
        for name, (d, h, n) in SIZES.items()
    }
    sizes = (1, 256, 4096) if args.quick else (1, 64, 1024, 4096, 16384, 65536)
    if not args.triton_only:
        bench_in_process(models, vocab, sizes, 5 if args.quick else 30, rng)
        bench_training(
            vocab, rng, 10 if args.quick else 100, (1024,) if args.quick else (1024, 8192)
        )
    if args.triton or args.triton_only:
        small = next(iter(models.values()))
        batches = (256, 4096) if args.quick else (64, 1024, 4096, 16384)
        bench_triton(
            small,
            vocab,
            batches,
            (1, 4) if args.quick else (1, 4, 8),
            1.0 if args.quick else 3.0,
            rng,
        )


if __name__ == "__main__":
    main()
