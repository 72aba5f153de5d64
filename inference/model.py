"""The Decision Transformer (Chen et al. 2021) that writes formulas, nanoGPT style.

A formula of ``T`` tokens is the sequence ``(g_1, s_1, a_1, ..., g_T, s_T, a_T)``: ``g_t``
the return-to-go (``inference.trajectories``), ``s_t`` the grammar state before step ``t``
(``GrammarState.features``: slot type, required kinds, depth, open slots) and ``a_t`` the
token chosen. Each is embedded to ``d_model`` (a linear map of the scaled return-to-go,
sums of small embedding tables for the state, a token table for the action) plus a
timestep embedding, and a causal transformer reads them in that order; the action head
reads the hidden state at ``s_t`` (which has seen ``g_t`` but not ``a_t``) and its logits
of tokens the grammar forbids are set to ``MASKED_LOGIT``. The loss is on actions only.

``behaviour_cloning=True`` drops the return-to-go tokens' content (they are zeroed), which
gives the filtered behaviour-cloning baseline with the same network.

The return-to-go scale (``rtg_scale``) is a buffer, so a checkpoint's ``state_dict``
carries it; ``next_action_logits`` is the entry point that exports to ONNX.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from alphafactory.formula.grammar import FEATURE_SIZES

MASKED_LOGIT = -1e9  # finite, so softmax of an all-masked row is uniform, never NaN


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    context: int = 16  # tokens per formula (the grammar's max_tokens)
    max_depth: int = 16
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.1  # on the embeddings and each block's residual branches
    # On the attention weights: off by default. With it on, CPU attention falls back to
    # the unfused math kernel (a third of a training step measured, on the retrainings
    # that share the walk-forward's two cores), and the residual dropout already
    # regularises these small models (the same loss after 100 steps, measured).
    attention_dropout: float = 0.0
    behaviour_cloning: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_head {self.n_head}")
        if min(self.vocab_size, self.context, self.n_layer, self.n_head) < 1:
            raise ValueError(f"vocab_size, context, n_layer and n_head must be >= 1: {self}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.attention_dropout = config.attention_dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.resid_dropout(self.proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class DecisionTransformer(nn.Module):
    def __init__(self, config: ModelConfig, rtg_scale: float = 1.0) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.register_buffer("rtg_scale", torch.tensor(float(rtg_scale)))
        self.embed_rtg = nn.Linear(1, d)
        self.embed_action = nn.Embedding(config.vocab_size + 1, d)  # last id: "no action yet"
        slot_codes, kind_sets = FEATURE_SIZES
        self.embed_state = nn.ModuleList(
            [
                nn.Embedding(slot_codes, d),
                nn.Embedding(kind_sets, d),
                nn.Embedding(config.max_depth + 2, d),
                nn.Embedding(config.context + 2, d),
            ]
        )
        self.embed_time = nn.Embedding(config.context, d)
        self.embed_role = nn.Embedding(3, d)  # return-to-go, state, action
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        rtg: torch.Tensor,  # (B, T) float
        features: torch.Tensor,  # (B, T, 4) int64
        actions: torch.Tensor,  # (B, T) int64; any value where not yet chosen
        masks: torch.Tensor,  # (B, T, V) bool: the grammar's valid tokens at each step
    ) -> torch.Tensor:
        """Masked action logits at every step, (B, T, V)."""
        logits = self.head(self._state_hidden(rtg, features, actions))
        return logits.masked_fill(~masks, MASKED_LOGIT)

    def next_action_logits(
        self,
        rtg: torch.Tensor,  # (B, T), T <= context
        features: torch.Tensor,  # (B, T, 4)
        actions: torch.Tensor,  # (B, T)
        lengths: torch.Tensor,  # (B,) steps so far + 1: the step to choose
        mask: torch.Tensor,  # (B, V) bool: valid tokens at that step
    ) -> torch.Tensor:
        """Logits of the next action of each partial formula, (B, V). The network is
        causal, so steps after ``lengths`` change nothing: ``T`` may be the longest length
        in the batch (the sampler sends just the steps so far) or the context (padded)."""
        if actions.shape[1] > self.config.context:
            raise ValueError(
                f"{actions.shape[1]} steps, more than the model's context {self.config.context}"
            )
        hidden = self._state_hidden(rtg, features, actions)  # (B, C, d)
        b, c, d = hidden.shape
        index = (lengths - 1).clamp(0, c - 1).view(b, 1, 1).expand(b, 1, d)
        logits = self.head(hidden.gather(1, index).squeeze(1))
        return logits.masked_fill(~mask, MASKED_LOGIT)

    def _state_hidden(self, rtg, features, actions) -> torch.Tensor:
        """The transformer's output at each state token, (B, T, d_model)."""
        b, t = actions.shape
        cfg = self.config
        scaled = (rtg / self.rtg_scale).unsqueeze(-1).to(self.embed_rtg.weight.dtype)
        if cfg.behaviour_cloning:
            scaled = torch.zeros_like(scaled)
        features = torch.clamp(features, min=0)
        state = sum(
            table(features[..., k].clamp(max=table.num_embeddings - 1))
            for k, table in enumerate(self.embed_state)
        )
        time = self.embed_time(torch.arange(t, device=actions.device))
        roles = self.embed_role.weight
        tokens = (
            torch.stack(
                (
                    self.embed_rtg(scaled) + roles[0],
                    state + roles[1],
                    self.embed_action(actions.clamp(0, cfg.vocab_size)) + roles[2],
                ),
                dim=2,
            )
            + time[None, :, None, :]
        )  # (B, T, 3, d)
        x = self.drop(tokens.reshape(b, 3 * t, cfg.d_model))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x.reshape(b, t, 3, cfg.d_model)[:, :, 1])


def action_loss(logits: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the chosen actions over the real (not padding) steps."""
    targets = torch.where(valid, actions, torch.zeros_like(actions))  # padding: any class
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
    )
    weights = valid.reshape(-1).to(flat.dtype)
    return (flat * weights).sum() / weights.sum().clamp(min=1.0)
