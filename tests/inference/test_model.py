"""The Decision Transformer: shapes, grammar masking, causality, loss on actions only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alphafactory.formula import LanguageConfig, Vocabulary, parse, random_formula, to_tokens
from inference.encoding import encode
from inference.model import MASKED_LOGIT, DecisionTransformer, ModelConfig, action_loss
from inference.sampling import InProcessPolicy, generate, sample

VOCAB = Vocabulary({"close": "panel", "volume": "panel", "cpi": "macro"}, LanguageConfig.daily())
CONTEXT = 10


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    formulas = [random_formula(VOCAB, rng, max_tokens=CONTEXT) for _ in range(6)]
    encoded = encode(
        [to_tokens(f) for f in formulas], rng.normal(size=6), VOCAB, context=CONTEXT, gamma=1.0
    )
    rows = np.arange(6)
    tensors = [torch.from_numpy(a) for a in (encoded.rtg, encoded.features, encoded.actions)]
    return (*tensors, torch.from_numpy(encoded.masks(rows)), torch.from_numpy(encoded.valid))


def model(**overrides) -> DecisionTransformer:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=len(VOCAB), context=CONTEXT, d_model=32, n_head=4, dropout=0.0, **overrides
    )
    return DecisionTransformer(config, rtg_scale=2.0).eval()


def test_logits_have_the_vocabulary_width_and_invalid_tokens_masked(batch):
    rtg, features, actions, masks, _ = batch
    logits = model()(rtg, features, actions, masks)
    assert logits.shape == (6, CONTEXT, len(VOCAB))
    assert (logits[~masks] == MASKED_LOGIT).all()
    assert (logits[masks] > MASKED_LOGIT / 2).all()


def test_a_step_sees_the_past_and_its_return_to_go_but_not_its_own_action(batch):
    rtg, features, actions, masks, _ = batch
    masks = torch.ones_like(masks)  # raw logits: masked ones would swamp the tolerances
    net = model()
    base = net(rtg, features, actions, masks)
    later = actions.clone()
    later[:, 4] = (later[:, 4] + 1) % len(VOCAB)
    changed = net(rtg, features, later, masks)
    torch.testing.assert_close(changed[:, :5], base[:, :5])  # step 4 and before: unchanged
    assert not torch.allclose(changed[:, 5:], base[:, 5:])
    conditioned = net(rtg + 3.0, features, actions, masks)
    assert not torch.allclose(conditioned[:, 0], base[:, 0])


def test_behaviour_cloning_ignores_the_return_to_go(batch):
    rtg, features, actions, masks, _ = batch
    net = model(behaviour_cloning=True)
    torch.testing.assert_close(
        net(rtg * 5 + 1, features, actions, masks), net(rtg, features, actions, masks)
    )


def test_next_action_logits_equal_the_full_forward_at_that_step(batch):
    rtg, features, actions, masks, _ = batch
    net = model()
    full = net(rtg, features, actions, masks)
    lengths = torch.tensor([1, 2, 3, 4, 5, 6])
    step_masks = masks[torch.arange(6), lengths - 1]
    # what comes after the step being chosen is padding the model must not read
    padded = actions.clone()
    for row, length in enumerate(lengths):
        padded[row, length - 1 :] = len(VOCAB)
    got = net.next_action_logits(rtg, features, padded, lengths, step_masks)
    torch.testing.assert_close(got, full[torch.arange(6), lengths - 1], rtol=1e-5, atol=1e-5)


def test_the_steps_so_far_give_the_logits_of_the_padded_context(batch):
    rtg, features, actions, masks, _ = batch
    net = model()
    for step in (1, 3, CONTEXT):
        lengths = torch.full((6,), step)
        mask = masks[:, step - 1]
        padded = net.next_action_logits(rtg, features, actions, lengths, mask)
        so_far = net.next_action_logits(
            rtg[:, :step], features[:, :step], actions[:, :step], lengths, mask
        )
        torch.testing.assert_close(so_far, padded, rtol=1e-5, atol=1e-5)
    longer = torch.cat([actions, actions[:, :1]], dim=1)
    with pytest.raises(ValueError, match=f"{CONTEXT + 1} steps, more than the model's context"):
        net.next_action_logits(
            torch.cat([rtg, rtg[:, :1]], 1),
            torch.cat([features, features[:, :1]], 1),
            longer,
            torch.ones(6, dtype=torch.int64),
            masks[:, 0],
        )


def test_the_sampler_sends_only_the_steps_so_far_and_writes_what_padding_would():
    net = model()
    direct = InProcessPolicy(net)
    widths = []

    def padded(rtg, features, actions, lengths, mask, *, top_k=0):
        widths.append(rtg.shape[1])
        missing = CONTEXT - rtg.shape[1]
        return direct(
            np.pad(rtg, ((0, 0), (0, missing))),
            np.pad(features, ((0, 0), (0, missing), (0, 0))),
            np.pad(actions, ((0, 0), (0, missing)), constant_values=len(VOCAB)),
            lengths,
            mask,
        )

    padded.context = CONTEXT
    a = generate(direct, VOCAB, 0.1, 40, rng=np.random.default_rng(7))
    b = generate(padded, VOCAB, 0.1, 40, rng=np.random.default_rng(7))
    assert [str(f) for f in a.formulas] == [str(f) for f in b.formulas] and a.formulas
    assert widths[:3] == [1, 2, 3]  # step t's call carries t steps, not the context


def test_the_loss_counts_real_steps_only(batch):
    rtg, features, actions, masks, valid = batch
    logits = model()(rtg, features, actions, masks)
    noisy = logits.clone()
    noisy[~valid] = torch.randn_like(noisy[~valid])  # padding steps: anything
    assert action_loss(noisy, actions, valid) == action_loss(logits, actions, valid)
    # with the grammar's masks the loss is below a uniform guess over the whole vocabulary
    assert action_loss(logits, actions, valid) < np.log(len(VOCAB))


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="d_model 30 must be divisible by n_head 4"):
        ModelConfig(vocab_size=10, d_model=30, n_head=4)
    with pytest.raises(ValueError, match=r"attention_dropout must be in \[0, 1\), got 1.0"):
        ModelConfig(vocab_size=10, attention_dropout=1.0)


def test_attention_dropout_is_its_own_setting_and_off_by_default(batch):
    """The residual dropout alone leaves the attention deterministic in training (the fused
    CPU kernel); ``attention_dropout`` drops attention weights, in training only."""
    rtg, features, actions, masks, _ = batch
    assert ModelConfig(vocab_size=10).attention_dropout == 0.0

    def twice(net):
        return [net(rtg, features, actions, masks) for _ in range(2)]

    first, second = twice(model(attention_dropout=0.0).train())
    assert torch.equal(first, second)
    first, second = twice(model(attention_dropout=0.5).train())
    assert not torch.equal(first, second)
    first, second = twice(model(attention_dropout=0.5).eval())
    assert torch.equal(first, second)


def test_sampling_draws_only_valid_tokens_and_top_k_limits_them():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 12))
    masks = rng.random((200, 12)) < 0.4
    masks[:, 0] = True
    chosen = sample(logits, masks, 1.0, 0, rng)
    assert masks[np.arange(200), chosen].all()
    top = sample(logits, masks, 1.0, 1, rng)
    best = np.argmax(np.where(masks, logits, -np.inf), axis=1)
    np.testing.assert_array_equal(top, best)
    parse("cpi", VOCAB.operands)  # the vocabulary is well formed


def test_masks_unpacked_on_the_training_device_equal_the_encoded_ones():
    from inference.training import _OnDevice

    rng = np.random.default_rng(3)
    formulas = [random_formula(VOCAB, rng, max_tokens=CONTEXT) for _ in range(5)]
    encoded = encode(
        [to_tokens(f) for f in formulas], rng.normal(size=5), VOCAB, context=CONTEXT, gamma=0.9
    )
    rows = np.array([4, 0, 2])
    got = _OnDevice(encoded, torch.device("cpu")).batch(torch.from_numpy(rows))
    want = (
        encoded.rtg[rows],
        encoded.features[rows],
        encoded.actions[rows],
        encoded.masks(rows),
        encoded.valid[rows],
    )
    for tensor, array in zip(got, want, strict=True):
        np.testing.assert_array_equal(tensor.numpy(), array)


def test_bf16_inference_needs_a_gpu():
    from inference.sampling import InProcessPolicy

    with pytest.raises(ValueError, match="bf16 inference needs a CUDA device, got 'cpu'"):
        InProcessPolicy(model(), "cpu", bf16=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.gpu
def test_bf16_logits_on_the_gpu_pick_the_fp32_tokens(batch):
    from inference.sampling import InProcessPolicy

    net = model()
    rtg, features, actions, masks, valid = (t.numpy() for t in batch)
    lengths = valid.sum(axis=1)
    step_masks = masks[np.arange(len(lengths)), lengths - 1]
    fp32 = InProcessPolicy(net, "cuda")(rtg, features, actions, lengths, step_masks)
    bf16 = InProcessPolicy(net, "cuda", bf16=True)(rtg, features, actions, lengths, step_masks)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16[step_masks], fp32[step_masks], atol=0.05)


def test_row_weights_draw_training_batches_in_proportion():
    from inference.training import TrainConfig, evaluate_loss, train

    chosen, other = (
        parse("rank(close)", VOCAB.operands),
        parse("ts_mean(volume, 5)", VOCAB.operands),
    )
    data = encode(
        [to_tokens(chosen), to_tokens(other)], [1.0, 1.0], VOCAB, context=CONTEXT, gamma=1.0
    )
    config = ModelConfig(vocab_size=len(VOCAB), context=CONTEXT, d_model=32, n_head=4)
    steps = TrainConfig(
        steps=30, batch_size=8, learning_rate=3e-3, warmup_steps=1, eval_every=30, device="cpu"
    )
    only = [
        encode([to_tokens(f)], [1.0], VOCAB, context=CONTEXT, gamma=1.0) for f in (chosen, other)
    ]
    for weights, favoured in (([1.0, 0.0], 0), ([0.0, 1.0], 1)):
        model = train(data, None, config, steps, row_weights=np.array(weights)).model
        losses = [evaluate_loss(model, one, "cpu") for one in only]
        assert losses[favoured] < losses[1 - favoured]
    for bad, message in (
        ([1.0], "2 finite values >= 0"),
        ([1.0, -1.0], "finite values >= 0"),
        ([0.0, 0.0], "all zero"),
    ):
        with pytest.raises(ValueError, match=message):
            train(data, None, config, steps, row_weights=np.array(bad))


def test_a_warm_start_begins_from_the_earlier_weights_and_refuses_another_shape():
    from inference.training import CheckpointError, TrainConfig, evaluate_loss, train

    tokens = [to_tokens(parse("rank(close)", VOCAB.operands))]
    data = encode(tokens, [1.0], VOCAB, context=CONTEXT, gamma=1.0)
    later = encode(tokens, [2.0], VOCAB, context=CONTEXT, gamma=1.0)  # a new return scale
    config = ModelConfig(vocab_size=len(VOCAB), context=CONTEXT, d_model=32, n_head=4)
    long = TrainConfig(steps=60, batch_size=8, learning_rate=3e-3, warmup_steps=1, device="cpu")
    short = TrainConfig(
        steps=2,
        batch_size=8,
        learning_rate=1e-5,
        min_learning_rate=1e-6,
        warmup_steps=1,
        device="cpu",
    )
    earlier = train(data, None, config, long).model
    warm = train(later, None, config, short, initial=earlier).model
    cold = train(later, None, config, short).model
    # two tiny steps move the weights little: the warm start keeps what the earlier learnt
    assert evaluate_loss(warm, later, "cpu") < 0.5 * evaluate_loss(cold, later, "cpu")
    assert (float(earlier.rtg_scale), float(warm.rtg_scale)) == (1.0, 2.0)  # the new data's
    other = ModelConfig(vocab_size=len(VOCAB), context=CONTEXT, d_model=16, n_head=4)
    with pytest.raises(CheckpointError, match="another shape"):
        train(later, None, other, short, initial=earlier)


def test_the_training_log_shows_a_validation_loss_only_when_there_is_a_held_out_set(caplog):
    from inference.training import TrainConfig, train

    data = encode(
        [to_tokens(parse("rank(close)", VOCAB.operands))], [1.0], VOCAB, context=CONTEXT, gamma=1.0
    )
    config = ModelConfig(vocab_size=len(VOCAB), context=CONTEXT, d_model=16, n_head=4)
    steps = TrainConfig(steps=2, batch_size=4, warmup_steps=1, eval_every=2, device="cpu")
    with caplog.at_level("INFO", logger="inference.training"):
        train(data, None, config, steps)
        train(data, data, config, steps)
    alone, held = [r.getMessage() for r in caplog.records if "train loss" in r.message]
    assert "no validation set" in alone and "nan" not in alone
    assert "validation loss" in held and "nan" not in held
