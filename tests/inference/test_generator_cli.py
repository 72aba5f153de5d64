"""Trajectories -> training -> generation through the console script, on a small market."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alphafactory.data.panel_files import load_panel, save_panel
from alphafactory.data.synthetic import synthetic_market
from alphafactory.formula import Kind, parse
from inference.pipeline import panel_vocabulary
from inference.sampling import InProcessPolicy, SamplingOptions, generate
from inference.training import CheckpointError, load_checkpoint

pytestmark = pytest.mark.slow
MACRO = [f"M{k:04d}" for k in range(6)]
SPLIT = "2022-01-01"


def alphafactory(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generator")
    market = synthetic_market(n_assets=10, n_dates=200, n_macro=6, seed=3, frequency="M")
    data = save_panel(market.panel, folder / "macro.parquet")
    macro = [arg for name in MACRO for arg in ("--macro", name)]
    common = ["--data", str(data), *macro, "--split", SPLIT]
    built = alphafactory(
        "trajectories",
        "build",
        *common,
        "--out",
        str(folder / "t.parquet"),
        "--random",
        "300",
        "--chains",
        "3",
        "--steps",
        "20",
        "--roots",
        "macro",
        "--max-tokens",
        "12",
        "--metric",
        "ic",
        "--workers",
        "2",
    )
    assert built.returncode == 0, built.stderr
    train = alphafactory(
        "model",
        "train",
        "--trajectories",
        str(folder / "t.parquet"),
        *common,
        "--out",
        str(folder / "m.pt"),
        "--steps",
        "300",
        "--batch-size",
        "64",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--device",
        "cpu",
    )
    assert train.returncode == 0, train.stderr
    return {
        "folder": folder,
        "data": data,
        "common": common,
        "build": json.loads(built.stdout),
        "train": json.loads(train.stdout),
    }


def test_trajectories_are_built_before_the_split_only(trained):
    summary = trained["build"]
    assert summary["trajectories"] == 360 and summary["sources"] == {"random": 300, "mcmc": 60}
    assert summary["data_end"] < SPLIT and summary["split"] == SPLIT


def test_training_lowers_the_loss_and_the_checkpoint_stands_alone(trained):
    history = trained["train"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(entry["val_loss"]) for entry in history)
    checkpoint = load_checkpoint(trained["folder"] / "m.pt")
    vocab = panel_vocabulary(load_panel(trained["data"], macro_columns=MACRO))
    assert checkpoint.vocab.fingerprint == vocab.fingerprint
    assert checkpoint.reward["metric"] == "ic" and checkpoint.provenance["split"] == SPLIT
    assert float(checkpoint.model.rtg_scale) > 0  # the normalisation travels as a buffer
    # two loads give the same logits: nothing outside the file shapes inference
    again = load_checkpoint(trained["folder"] / "m.pt")
    rng = np.random.default_rng(0)
    a = generate(
        InProcessPolicy(checkpoint.model),
        checkpoint.vocab,
        0.1,
        20,
        rng=rng,
        root_kinds={Kind.MACRO},
    )
    b = generate(
        InProcessPolicy(again.model),
        again.vocab,
        0.1,
        20,
        rng=np.random.default_rng(0),
        root_kinds={Kind.MACRO},
    )
    assert [str(f) for f in a.formulas] == [str(f) for f in b.formulas]
    for name, value in checkpoint.model.state_dict().items():
        torch.testing.assert_close(value, again.model.state_dict()[name])


def test_generated_formulas_always_parse_and_are_distinct(trained):
    result = alphafactory(
        "generate",
        "--model",
        str(trained["folder"] / "m.pt"),
        "--target",
        "ic=0.1",
        "-n",
        "40",
        "--seed",
        "2",
        "--temperature",
        "1.5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    formulas = printed["formulas"]
    assert printed["n_generated"] == len(formulas) == len(set(formulas)) > 0
    operands = load_panel(trained["data"], macro_columns=MACRO).operand_kinds
    checkpoint = load_checkpoint(trained["folder"] / "m.pt")
    for text in formulas:
        node = parse(text, operands, checkpoint.vocab.config)
        assert str(node) == text and node.kind is Kind.MACRO  # trained on macro formulas


def test_many_samples_from_every_setting_are_valid(trained):
    checkpoint = load_checkpoint(trained["folder"] / "m.pt")
    policy = InProcessPolicy(checkpoint.model)
    for temperature, top_k in ((0.3, 0), (1.0, 3), (3.0, 0)):
        options = SamplingOptions(temperature=temperature, top_k=top_k, batch_size=128)
        result = generate(
            policy, checkpoint.vocab, 0.05, 200, options=options, rng=np.random.default_rng(1)
        )
        assert result.formulas, (temperature, top_k)
        for node in result.formulas:
            assert parse(str(node), checkpoint.vocab.operands, checkpoint.vocab.config) == node


def test_bad_requests_are_named(trained, tmp_path):
    model = str(trained["folder"] / "m.pt")
    wrong = alphafactory("generate", "--model", model, "--target", "hac_tstat=3")
    assert wrong.returncode == 2 and "trained on 'ic'" in wrong.stderr
    shape = alphafactory("generate", "--model", model, "--target", "ic")
    assert shape.returncode == 2 and "METRIC=NUMBER" in shape.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    late = alphafactory(
        "trajectories",
        "build",
        "--data",
        str(trained["data"]),
        "--split",
        "2031-01-01",
        "--out",
        str(tmp_path / "x.parquet"),
    )
    assert late.returncode == 2 and "--split 2031-01-01" in late.stderr
