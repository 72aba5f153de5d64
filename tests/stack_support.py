"""Helpers for tests that run the real local stack on free ports in a private state dir."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from alphafactory.settings import Settings, load_settings


def free_ports(count: int) -> list[int]:
    """Ports the kernel reports free now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_range(count: int, *, attempts: int = 50) -> int:
    """The first of ``count`` consecutive ports that are free now (the services' metrics
    endpoints: ``metrics.port`` + their place in SERVICES). Drawn at random above the
    kernel's ephemeral range's usual start, so parallel tests rarely pick the same."""
    import random

    for _ in range(attempts):
        base = random.randrange(20_000, 32_000)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports found in {attempts} draws")


def months_ending_before_now(n_months: int) -> str:
    """The ``start`` of a monthly synthetic market of ``n_months`` whose last month, and
    so its last release, lies before now: the release handler refuses future events."""
    first = pd.Timestamp.now(tz="UTC").normalize() - pd.DateOffset(months=n_months + 3)
    return first.strftime("%Y-%m-01")


def make_state_dir(prefix: str = "alphafactory-test-") -> Path:
    # mkdtemp makes the directory 0700; as root the stack runs Postgres as the postgres
    # user, which must be able to enter it.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def isolated_settings(state_dir: Path) -> Settings:
    from app.services import SERVICES

    kafka, postgres, redis, http, grpc, metrics, dashboard = free_ports(7)
    return load_settings(
        state_dir=state_dir,
        kafka={"bootstrap": f"127.0.0.1:{kafka}"},
        postgres={"port": postgres},
        redis={"url": f"redis://127.0.0.1:{redis}/0"},
        triton={
            "http": f"127.0.0.1:{http}",
            "grpc": f"127.0.0.1:{grpc}",
            "metrics_port": metrics,
            "repository": state_dir / "models",
        },
        # tests run the services they need themselves (the end-to-end test runs them all)
        pipeline={"services": False},
        metrics={"port": free_port_range(len(SERVICES))},
        dashboard={"port": dashboard},
    )


def service_settings(state_dir: Path, **pipeline) -> Settings:
    """``isolated_settings`` with the pipeline services on (as `stack up` runs them by
    default), the generator checkpoint in the state directory, and ``pipeline`` keys."""
    base = isolated_settings(state_dir)
    update = {
        "services": True,
        "poll_interval_s": 0.2,
        "generator_checkpoint": state_dir / "generator.pt",
        **pipeline,
    }
    return base.model_copy(update={"pipeline": base.pipeline.model_copy(update=update)})


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment with the ALPHAFACTORY_* variables of ``settings``."""
    from alphafactory.settings import settings_env as variables

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFACTORY_")}
    env.update(variables(settings))
    return env


@contextlib.contextmanager
def running_stack(settings: Settings):
    from app import stack

    try:
        stack.up(settings)
        yield settings
    finally:
        stack.down(settings)


def untrained_generator(panel, *, context: int, d_model: int, path=None):
    """A generator network over ``panel``'s vocabulary with seeded random weights (its
    formulas are grammar-valid, which is all a pipeline test or a latency benchmark needs),
    saved as a checkpoint at ``path`` when given. Returns (model, vocabulary)."""
    import torch

    from alphafactory.formula import Vocabulary
    from alphafactory.scoring import config_for_panel
    from inference.model import DecisionTransformer, ModelConfig
    from inference.training import save_checkpoint

    vocab = Vocabulary(panel.operand_kinds, config_for_panel(panel))
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=len(vocab),
        context=context,
        d_model=d_model,
        n_head=2 if d_model < 64 else 4,
        n_layer=1 if d_model < 64 else 2,
        max_depth=vocab.config.max_depth,
    )
    model = DecisionTransformer(config).eval()
    if path is not None:
        save_checkpoint(path, model, vocab, reward={"metric": "hac_tstat", "gamma": 1.0})
    return model, vocab


def kcat_publish(
    settings, messages: list[tuple[str, bytes]], topic: str = "macro.releases"
) -> None:
    """Publish with kcat: one `key<TAB>value` line per message."""
    lines = b"".join(key.encode() + b"\t" + value + b"\n" for key, value in messages)
    subprocess.run(
        ["kcat", "-P", "-b", settings.kafka.bootstrap, "-t", topic, "-K", "\t"],
        input=lines,
        check=True,
        timeout=60,
    )


def as_trading_reader(settings, query: str) -> list[list[str]]:
    out = subprocess.run(
        ["psql", settings.postgres.dsn("trading"), "-tA", "-F", "\t", "-c", query],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def positions_for(
    settings, event_id: str, view: str = "latest_target_positions", timeout_s: float = 180
) -> list[list[str]]:
    query = f"SELECT asset, weight, as_of FROM trading.{view} WHERE trigger_event_id = '{event_id}'"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = as_trading_reader(settings, query)
        if rows:
            return rows
        time.sleep(0.5)
    raise AssertionError(f"no positions for {event_id} after {timeout_s} s")
