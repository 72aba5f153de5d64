"""Generator throughput in process: next-action rows/s and latency by batch size, training
rows/s (issue 4, section 6; the Triton figures join these once the model is exported).

    .venv/bin/python benchmarks/generator.py [--quick] [--device cpu|cuda] [--triton]

A model of the size the README trains (2 layers, d_model 64, context 16) over a vocabulary
the size of a 500-series macro strategy. Inputs are real grammar states: random formulas
cut at random lengths. Each batch size is warmed up, then timed call by call, so p50 and
p99 are per-call latencies and rows/s is batch / median latency.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alphafactory.formula import LanguageConfig, Vocabulary, random_formula, to_tokens
from inference.encoding import encode
from inference.model import DecisionTransformer, ModelConfig
from inference.repository import DEFAULT_TOP_K
from inference.sampling import InProcessPolicy
from inference.training import TrainConfig, train

CONTEXT = 16


def next_action_inputs(vocab: Vocabulary, batch: int, rng) -> tuple[np.ndarray, ...]:
    formulas = [random_formula(vocab, rng, max_tokens=CONTEXT) for _ in range(batch)]
    encoded = encode(
        [to_tokens(f) for f in formulas], rng.normal(size=batch), vocab, context=CONTEXT, gamma=1.0
    )
    lengths = np.array([rng.integers(1, v.sum() + 1) for v in encoded.valid], dtype=np.int64)
    rows = np.arange(batch)
    masks = encoded.masks(rows)[rows, lengths - 1]
    return encoded.rtg, encoded.features, encoded.actions, lengths, masks, encoded


def bench_next_action(
    policy, vocab, sizes, calls: int, rng, label: str, inputs=None, top_k: int = 0
) -> None:
    """``inputs(batch)`` builds the call's arrays; by default fresh grammar states.
    ``top_k`` > 0 asks the policy for the top-k logits only (Triton's top pair)."""
    print(f"next-action calls {label}, context {CONTEXT}, V={len(vocab)}")
    print("   batch   p50 ms   p99 ms        rows/s")
    for batch in sizes:
        inputs_now = inputs(batch) if inputs else next_action_inputs(vocab, batch, rng)[:5]
        for _ in range(3):
            policy(*inputs_now, top_k=top_k)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            policy(*inputs_now, top_k=top_k)
            times.append(time.perf_counter() - start)
        p50, p99 = np.percentile(times, [50, 99])
        print(f"  {batch:6d} {1e3 * p50:8.2f} {1e3 * p99:8.2f} {batch / p50:13,.0f}")


@contextlib.contextmanager
def served_by_triton(model: DecisionTransformer, vocab: Vocabulary):
    """Export ``model``, serve it with the stack's Triton component on free ports."""
    from alphafactory.settings import load_settings
    from deploy.local.components import Triton
    from deploy.local.stack import _wait_until_ready, stack_paths
    from inference.export import export_repository
    from inference.repository import ServingOptions
    from inference.training import Checkpoint
    from inference.triton_client import TritonPolicy

    state = Path(tempfile.mkdtemp(prefix="alphafactory-bench-"))
    http, grpc, metrics = _free_ports(3)
    settings = load_settings(
        state_dir=state,
        triton={
            "http": f"127.0.0.1:{http}",
            "grpc": f"127.0.0.1:{grpc}",
            "metrics_port": metrics,
            "repository": state / "models",
        },
    )
    checkpoint = Checkpoint(model, vocab, {"metric": "ic"}, {}, {})
    export_repository(
        checkpoint,
        settings.triton.repository,
        ServingOptions(model_name=settings.triton.generator_model, instances="cpu"),
    )
    server, paths = Triton(), stack_paths(settings)
    server.start(settings, paths)
    try:
        failures = _wait_until_ready(settings, paths, [server])
        if failures:
            raise RuntimeError(str(failures[0]))
        yield TritonPolicy(
            settings.triton.grpc,
            settings.triton.generator_model,
            context=model.config.context,
            timeout_s=60,
        )
    finally:
        server.stop(settings, paths)
        shutil.rmtree(state, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def bench_trajectories(count: int, workers: int) -> None:
    """Trajectories/s on the (B) macro panel of benchmarks/factor_eval.py (500 series x
    360 months, 20 assets), random formulas scored with the hac_tstat reward."""
    from alphafactory.data import synthetic_market
    from inference.trajectories import BuildPlan, RewardSpec, build_trajectories

    market = synthetic_market(n_assets=20, n_dates=360, n_macro=500, seed=2, frequency="M")
    vocab = Vocabulary(market.panel.operand_kinds, LanguageConfig.monthly())
    plan = BuildPlan(
        random=count,
        mcmc_chains=0,
        max_tokens=CONTEXT,
        root_kinds=("macro",),
        task_size=max(1, count // (4 * workers)),
    )
    build_trajectories(
        market.panel, vocab, RewardSpec(), BuildPlan(random=50, mcmc_chains=0), workers=1
    )  # warm-up: compiled kernels loaded
    start = time.perf_counter()
    built = build_trajectories(market.panel, vocab, RewardSpec(), plan, workers=workers)
    seconds = time.perf_counter() - start
    print(
        f"trajectories: {len(built):,} built and scored in {seconds:.1f} s with {workers} "
        f"worker process(es), {len(built) / seconds:,.0f}/s (500 macro series x 360 "
        "months, 20 assets)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--trajectories",
        type=int,
        default=0,
        help="also time building this many trajectories (1 and 2 workers)",
    )
    parser.add_argument(
        "--triton", action="store_true", help="also through a local Triton server (exported model)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    operands = {f"M{k:04d}": "macro" for k in range(40 if args.quick else 500)}
    vocab = Vocabulary(operands | {"returns": "panel"}, LanguageConfig.monthly())
    config = ModelConfig(
        vocab_size=len(vocab), context=CONTEXT, d_model=64, n_head=4, n_layer=2, dropout=0.0
    )
    model = DecisionTransformer(config).eval()
    sizes = (1, 16, 64) if args.quick else (1, 4, 16, 64, 256, 1024)
    calls = 5 if args.quick else 50
    bench_next_action(
        InProcessPolicy(model, args.device), vocab, sizes, calls, rng, f"in process ({args.device})"
    )
    if args.triton:
        with served_by_triton(model, vocab) as policy:
            label = "through the local Triton (PyTriton + ONNX Runtime, gRPC)"
            bench_next_action(policy, vocab, sizes, calls, rng, f"{label}, every logit")
            top_k = DEFAULT_TOP_K
            label = f"{label}, the top {top_k} only"
            bench_next_action(policy, vocab, sizes, calls, rng, label, top_k=top_k)
    for workers in (1, 2) if args.trajectories else ():
        bench_trajectories(args.trajectories, workers)
    data = next_action_inputs(vocab, 512 if args.quick else 4096, rng)[-1]
    steps = 20 if args.quick else 200
    result = train(
        data,
        None,
        config,
        TrainConfig(
            steps=steps, batch_size=256, eval_every=steps, warmup_steps=10, device=args.device
        ),
    )
    print(
        f"training: {steps} steps of 256 formulas in {result.seconds:.1f} s, "
        f"{result.rows_per_second:,.0f} formulas/s ({args.device}, "
        f"{torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
