"""Export to a Triton model repository; serving on the real local Triton; the client."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from datetime import UTC, datetime

import numpy as np
import onnx
import pytest
import torch
from google.protobuf import text_format
from prometheus_client import REGISTRY
from tritonclient.grpc import model_config_pb2 as pb

from alphafactory.formula import LanguageConfig, Vocabulary, parse, random_formula, to_tokens
from inference.encoding import encode
from inference.export import export_repository
from inference.model import ModelConfig
from inference.repository import (
    DEFAULT_TOP_K,
    INPUT_NAMES,
    OUTPUT_NAMES,
    ServingOptions,
    read_model,
)
from inference.sampling import InProcessPolicy, SamplingOptions, generate
from inference.training import TrainConfig, load_checkpoint, save_checkpoint, train
from inference.triton_client import FallbackPolicy, TritonPolicy, TritonUnavailable, _pad_steps

CONTEXT = 10
# Triton computes in ONNX Runtime, the reference in torch: same float32 graph, different
# kernels, so logits agree to rounding (observed 2.4e-7), not bit for bit.
TOLERANCE = 1e-5
STEPPED = ("rtg", "features", "actions")  # the inputs with a step axis
VOCAB = Vocabulary(
    {"close": "panel", "volume": "panel", "cpi": "macro", "gdp": "macro"}, LanguageConfig.monthly()
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)
    formulas = [random_formula(VOCAB, rng, max_tokens=CONTEXT) for _ in range(64)]
    data = encode(
        [to_tokens(f) for f in formulas], rng.normal(size=64), VOCAB, context=CONTEXT, gamma=1.0
    )
    config = ModelConfig(vocab_size=len(VOCAB), context=CONTEXT, d_model=32, n_head=2)
    result = train(
        data,
        None,
        config,
        TrainConfig(steps=20, batch_size=32, warmup_steps=2, eval_every=20, device="cpu"),
    )
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    save_checkpoint(path, result.model, VOCAB, reward={"metric": "ic", "gamma": 1.0})
    return load_checkpoint(path)


def inputs(rows: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, len(VOCAB))) < 0.5
    mask[:, 0] = True
    return (
        rng.normal(size=(rows, CONTEXT)).astype(np.float32),
        rng.integers(0, 4, size=(rows, CONTEXT, 4)),
        rng.integers(0, len(VOCAB) + 1, size=(rows, CONTEXT)),
        rng.integers(1, CONTEXT + 1, size=rows),
        mask,
    )


def reference(checkpoint, arrays) -> np.ndarray:
    with torch.no_grad():
        tensors = [torch.from_numpy(np.asarray(a)) for a in arrays]
        return checkpoint.model.next_action_logits(*tensors).numpy()


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    repository = tmp_path_factory.mktemp("repo")
    export_repository(checkpoint, repository, ServingOptions(model_name="gen", version=2))
    return repository


def test_the_repository_layout_and_config_match_the_onnx_graph(exported):
    folder = exported / "gen"
    assert sorted(p.name for p in folder.iterdir()) == ["2", "config.pbtxt", "generator.json"]
    config = text_format.Parse((folder / "config.pbtxt").read_text(), pb.ModelConfig())
    graph = onnx.load(str(folder / "2" / "model.onnx")).graph
    onnx_types = {
        onnx.TensorProto.FLOAT: pb.TYPE_FP32,
        onnx.TensorProto.INT64: pb.TYPE_INT64,
        onnx.TensorProto.BOOL: pb.TYPE_BOOL,
        onnx.TensorProto.INT32: pb.TYPE_INT32,
    }
    for declared, actual in zip(
        (*config.input, *config.output), (*graph.input, *graph.output), strict=True
    ):
        shape = actual.type.tensor_type.shape.dim
        assert declared.name == actual.name
        assert declared.data_type == onnx_types[actual.type.tensor_type.elem_type]
        assert shape[0].dim_param  # the batch dimension is dynamic
        if declared.name in STEPPED:  # and the step axis: -1 in the config
            assert shape[1].dim_param and declared.dims[0] == -1
            assert list(declared.dims[1:]) == [d.dim_value for d in shape[2:]]
        else:
            assert list(declared.dims) == [d.dim_value for d in shape[1:]]
    assert config.parameters["context"].string_value == str(CONTEXT)
    assert tuple(t.name for t in config.input) == INPUT_NAMES
    assert tuple(t.name for t in config.output) == OUTPUT_NAMES
    assert [list(t.dims) for t in config.output] == [
        [len(VOCAB)],
        [DEFAULT_TOP_K],
        [DEFAULT_TOP_K],
    ]
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 1024
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU  # production
    served = read_model(folder)
    assert served.version == 2 and served.metadata["context"] == CONTEXT
    assert Vocabulary.from_dict(served.metadata["vocabulary"]).fingerprint == VOCAB.fingerprint


def test_the_training_cutoff_travels_with_the_checkpoint_and_the_served_model(checkpoint, tmp_path):
    assert checkpoint.trained_until is None  # a hand-made model does not say
    dated = dataclasses.replace(
        checkpoint, reward={**checkpoint.reward, "trained_until": "2015-01-31T04:59:59+00:00"}
    )
    assert dated.trained_until == datetime(2015, 1, 31, 4, 59, 59, tzinfo=UTC)
    split_only = dataclasses.replace(
        checkpoint, reward={**checkpoint.reward, "split": "2015-02-01"}
    )
    # trained on the rows before the split: released by the end of the day before it (NY)
    assert split_only.trained_until == datetime(2015, 2, 1, 4, 59, 59, 999999, tzinfo=UTC)
    export_repository(dated, tmp_path, ServingOptions(model_name="gen"))
    config = text_format.Parse((tmp_path / "gen" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert config.parameters["trained_until"].string_value == "2015-01-31T04:59:59+00:00"
    assert read_model(tmp_path / "gen").metadata["trained_until"] == "2015-01-31T04:59:59+00:00"


def test_onnx_runtime_computes_the_same_logits_as_torch(checkpoint, exported):
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(exported / "gen" / "2" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    arrays = inputs(33)
    feeds = dict(zip(INPUT_NAMES, arrays, strict=True))
    feeds["lengths"] = feeds["lengths"].reshape(-1, 1)
    got, top_logits, top_tokens = session.run(None, feeds)
    expected = reference(checkpoint, arrays)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    # the top pair: the K largest logits, largest first, and the tokens that hold them
    assert top_tokens.dtype == np.int32 and top_tokens.shape == (33, DEFAULT_TOP_K)
    assert np.all(np.diff(top_logits, axis=1) <= 0)
    np.testing.assert_array_equal(np.take_along_axis(got, top_tokens, axis=1), top_logits)
    kth_largest = -np.sort(-expected, axis=1)[:, DEFAULT_TOP_K - 1]
    np.testing.assert_allclose(top_logits[:, -1], kth_largest, rtol=0, atol=TOLERANCE)
    for steps in (1, 4):  # the steps so far, as the sampler sends them
        short = so_far(arrays, steps)
        feeds = dict(zip(INPUT_NAMES, short, strict=True)) | {"lengths": short[3][:, None]}
        got = session.run(["logits"], feeds)[0]
        np.testing.assert_allclose(got, reference(checkpoint, short), rtol=0, atol=TOLERANCE)


def so_far(arrays, steps: int):
    """The inputs cut to their first ``steps`` steps, each row choosing step ``steps``."""
    rtg, features, actions, _, mask = arrays
    lengths = np.full(len(rtg), steps, dtype=np.int64)
    return rtg[:, :steps], features[:, :steps], actions[:, :steps], lengths, mask


def test_a_folder_serving_a_fixed_step_version_declares_it_and_the_client_pads(
    checkpoint, tmp_path
):
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen"))
    own = tmp_path / "gen" / "1" / "generator.json"
    older = {k: v for k, v in json.loads(own.read_text()).items() if k != "variable_steps"}
    own.write_text(json.dumps(older))  # as version 1 was written before the axis was variable
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen", version=2))
    config = text_format.Parse((tmp_path / "gen" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert [list(t.dims) for t in config.input[:3]] == [[CONTEXT], [CONTEXT, 4], [CONTEXT]]
    # the client's padding: the logits of the steps so far, padded, are theirs unpadded
    short = so_far(inputs(5, seed=3), 3)
    padded = _pad_steps(*short[:3], CONTEXT, len(VOCAB))
    assert [a.shape[1] for a in padded] == [CONTEXT] * 3 and (padded[2][:, 3:] == len(VOCAB)).all()
    np.testing.assert_allclose(
        reference(checkpoint, (*padded, *short[3:])), reference(checkpoint, short), atol=1e-6
    )


def test_a_version_exported_before_the_top_outputs_keeps_the_folder_on_logits(checkpoint, tmp_path):
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen", top_k=0))
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen", version=2))
    config = text_format.Parse((tmp_path / "gen" / "config.pbtxt").read_text(), pb.ModelConfig())
    # one config serves both versions, and version 1 has no top pair
    assert [t.name for t in config.output] == ["logits"]
    assert list(config.version_policy.specific.versions) == [1, 2]
    assert read_model(tmp_path / "gen").metadata["top_k"] == DEFAULT_TOP_K
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen", version=3))
    export_repository(checkpoint, tmp_path, ServingOptions(model_name="gen", version=4))
    config = text_format.Parse((tmp_path / "gen" / "config.pbtxt").read_text(), pb.ModelConfig())
    # version 1 has left the served list (keep_versions = 3): the top pair is served
    assert tuple(t.name for t in config.output) == OUTPUT_NAMES


def test_serving_options_name_a_bad_top_k():
    with pytest.raises(ValueError, match="top_k must be between 0 and 4096, got -1"):
        ServingOptions(top_k=-1)


def dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens


def test_triton_down_is_a_clear_error_after_bounded_jittered_retries():
    slept: list[float] = []
    address = dead_address()
    with pytest.raises(TritonUnavailable, match=f"{address}.*'gen'.*3 times"):
        TritonPolicy(address, "gen", timeout_s=1.0, retries=3, backoff_s=0.2, sleep=slept.append)
    assert len(slept) == 2 and 0 <= slept[0] <= 0.2 and 0 <= slept[1] <= 0.4


def test_the_fallback_answers_in_process_and_says_so(checkpoint, caplog):
    local = InProcessPolicy(checkpoint.model)

    def connect():
        return TritonPolicy(dead_address(), "gen", timeout_s=1.0, retries=1)

    now, attempts = [0.0], []

    def counted_connect():
        attempts.append(now[0])
        return connect()

    policy = FallbackPolicy(counted_connect, local, retry_after_s=30.0, clock=lambda: now[0])
    arrays = inputs(4)
    fallbacks = REGISTRY.get_sample_value("alphafactory_triton_fallbacks_total")
    with caplog.at_level(logging.WARNING, logger="inference.triton_client"):
        got = policy(*arrays)
        now[0] = 10.0
        policy(*arrays)  # the breaker is open: no new attempt on Triton
        now[0] = 31.0
        policy(*arrays)  # closed again: Triton is tried (and fails) once more
    np.testing.assert_array_equal(got, local(*arrays))
    assert policy.fallback_calls == 3 and attempts == [0.0, 31.0]
    assert REGISTRY.get_sample_value("alphafactory_triton_fallbacks_total") - fallbacks == 3
    assert "Triton unavailable, answering in process for the next 30 s" in caplog.text


@pytest.mark.stack
class TestOnTheLocalTriton:
    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, checkpoint, stack_settings):
        from app import stack

        name = stack_settings.triton.generator_model
        export_repository(
            checkpoint,
            stack_settings.triton.repository,
            ServingOptions(model_name=name, instances="cpu"),
        )
        try:
            assert stack.restart(stack_settings, ["triton"]) == ["triton"]
        except stack.StackError as error:
            log = stack.stack_paths(stack_settings).log("triton")
            pytest.fail(f"{error}\n{log.read_text()[-3000:] if log.exists() else ''}")
        with pytest.raises(ValueError, match="does not say its context"):
            TritonPolicy(stack_settings.triton.grpc, name, retries=5)
        policy = TritonPolicy(stack_settings.triton.grpc, name, context=CONTEXT, retries=5)
        yield policy
        policy.close()

    def test_triton_logits_equal_the_in_process_model(self, served, checkpoint):
        assert (served.context, served.vocab_size) == (CONTEXT, len(VOCAB))
        assert served.padded_steps == 0  # the step axis is variable
        for rows in (1, 7, 64):
            arrays = inputs(rows, seed=rows)
            got = served(*arrays)
            np.testing.assert_allclose(got, reference(checkpoint, arrays), rtol=0, atol=TOLERANCE)
            short = so_far(arrays, 2)
            np.testing.assert_allclose(
                served(*short), reference(checkpoint, short), rtol=0, atol=TOLERANCE
            )

    def test_a_call_longer_than_the_context_is_refused_by_name(self, served):
        rtg, features, actions, lengths, mask = inputs(2)
        longer = (
            np.concatenate([rtg, rtg[:, :1]], 1),
            np.concatenate([features, features[:, :1]], 1),
            np.concatenate([actions, actions[:, :1]], 1),
        )
        retries, served.retries = served.retries, 1
        try:
            with pytest.raises(TritonUnavailable, match=f"{CONTEXT + 1} steps sent, more than"):
                served(*longer, lengths, mask)
        finally:
            served.retries = retries

    def test_batches_above_the_model_limit_are_split(self, served, checkpoint):
        arrays = inputs(10, seed=5)
        whole = served(*arrays)
        limit, served.max_batch_size = served.max_batch_size, 3
        calls = REGISTRY.get_sample_value("alphafactory_triton_call_seconds_count")
        try:
            np.testing.assert_array_equal(served(*arrays), whole)
        finally:
            served.max_batch_size = limit
        # each of the four calls is timed (alphafactory_triton_call_seconds)
        assert REGISTRY.get_sample_value("alphafactory_triton_call_seconds_count") - calls == 4

    def test_a_top_k_sampler_gets_the_top_outputs_and_draws_the_same_tokens(
        self, served, checkpoint
    ):
        assert served.served_top_k == DEFAULT_TOP_K
        arrays = inputs(9, seed=11)
        top = served(*arrays, top_k=5)
        expected = reference(checkpoint, arrays)
        kept = top > -1e8  # the five largest; every other logit comes back masked
        assert np.all(kept.sum(axis=1) == 5)
        np.testing.assert_allclose(top[kept], expected[kept], rtol=0, atol=TOLERANCE)
        assert np.all(expected[~kept].reshape(9, -1).max(axis=1) <= top[kept].reshape(9, 5).min(1))
        local = InProcessPolicy(checkpoint.model)
        options = SamplingOptions(top_k=5)
        through_triton = generate(
            served, VOCAB, 0.1, 20, options=options, rng=np.random.default_rng(4)
        )
        in_process = generate(local, VOCAB, 0.1, 20, options=options, rng=np.random.default_rng(4))
        assert [str(f) for f in through_triton.formulas] == [str(f) for f in in_process.formulas]

    def test_generation_through_triton_writes_valid_formulas(self, served, checkpoint):
        result = generate(served, checkpoint.vocab, 0.1, 30, rng=np.random.default_rng(3))
        assert result.formulas
        for node in result.formulas:
            assert parse(str(node), VOCAB.operands, VOCAB.config) == node


def test_generate_via_triton_falls_back_or_fails_per_the_settings(checkpoint, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "m.pt"
    save_checkpoint(path, checkpoint.model, checkpoint.vocab, reward=checkpoint.reward)
    script = Path(sys.executable).parent / "alphafactory"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFACTORY_")}
    env |= {"ALPHAFACTORY_TRITON__GRPC": dead_address(), "ALPHAFACTORY_TRITON__RETRIES": "1"}
    argv = [
        str(script),
        "generate",
        "--model",
        str(path),
        "--target",
        "ic=0.1",
        "-n",
        "5",
        "--via",
        "triton",
        "--json",
    ]
    fallback = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert fallback.returncode == 0, fallback.stderr
    assert "answering" in fallback.stderr and "in process" in fallback.stderr
    assert 0 < len(json.loads(fallback.stdout)["formulas"]) <= 5
    env["ALPHAFACTORY_TRITON__FALLBACK"] = "fail"
    failed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert env["ALPHAFACTORY_TRITON__GRPC"] in failed.stderr and "failed" in failed.stderr
