"""Generator throughput in process: next-action rows/s and latency by batch size, training
rows/s (issue 4, section 6; the Triton figures join these once the model is exported).

    .venv/bin/python benchmarks/generator.py [--quick] [--device cpu|cuda]

A model of the size the README trains (2 layers, d_model 64, context 16) over a vocabulary
the size of a 500-series macro strategy. Inputs are real grammar states: random formulas
cut at random lengths. Each batch size is warmed up, then timed call by call, so p50 and
p99 are per-call latencies and rows/s is batch / median latency.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from alphafactory.formula import LanguageConfig, Vocabulary, random_formula, to_tokens
from inference.encoding import encode
from inference.model import DecisionTransformer, ModelConfig
from inference.sampling import InProcessPolicy
from inference.training import TrainConfig, train

CONTEXT = 16


def next_action_inputs(vocab: Vocabulary, batch: int, rng) -> tuple[np.ndarray, ...]:
    formulas = [random_formula(vocab, rng, max_tokens=CONTEXT) for _ in range(batch)]
    encoded = encode([to_tokens(f) for f in formulas], rng.normal(size=batch), vocab,
                     context=CONTEXT, gamma=1.0)  # fmt: skip
    lengths = np.array([rng.integers(1, v.sum() + 1) for v in encoded.valid], dtype=np.int64)
    rows = np.arange(batch)
    masks = encoded.masks(rows)[rows, lengths - 1]
    return encoded.rtg, encoded.features, encoded.actions, lengths, masks, encoded


def bench_next_action(policy, vocab, sizes, calls: int, rng) -> None:
    print(f"next-action calls in process ({policy.device}), context {CONTEXT}, V={len(vocab)}")
    print("   batch   p50 ms   p99 ms        rows/s")
    for batch in sizes:
        inputs = next_action_inputs(vocab, batch, rng)[:5]
        for _ in range(3):
            policy(*inputs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            policy(*inputs)
            times.append(time.perf_counter() - start)
        p50, p99 = np.percentile(times, [50, 99])
        print(f"  {batch:6d} {1e3 * p50:8.2f} {1e3 * p99:8.2f} {batch / p50:13,.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    operands = {f"M{k:04d}": "macro" for k in range(40 if args.quick else 500)}
    vocab = Vocabulary(operands | {"returns": "panel"}, LanguageConfig.monthly())
    config = ModelConfig(vocab_size=len(vocab), context=CONTEXT, d_model=64, n_head=4,
                         n_layer=2, dropout=0.0)  # fmt: skip
    model = DecisionTransformer(config).eval()
    sizes = (1, 16, 64) if args.quick else (1, 4, 16, 64, 256, 1024)
    bench_next_action(InProcessPolicy(model, args.device), vocab, sizes,
                      calls=5 if args.quick else 50, rng=rng)  # fmt: skip
    data = next_action_inputs(vocab, 512 if args.quick else 4096, rng)[-1]
    steps = 20 if args.quick else 200
    result = train(data, None, config,
                   TrainConfig(steps=steps, batch_size=256, eval_every=steps, warmup_steps=10,
                               device=args.device))  # fmt: skip
    print(
        f"training: {steps} steps of 256 formulas in {result.seconds:.1f} s, "
        f"{result.rows_per_second:,.0f} formulas/s ({args.device}, "
        f"{torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
