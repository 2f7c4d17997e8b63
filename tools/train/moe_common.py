# SPDX-License-Identifier: MIT
"""Model definition and routing statistics shared by the training tools.

The bundled model is a stock transformers Qwen3MoeForCausalLM.  For training
speed its MoE blocks can be given a different (mathematically identical)
forward: "dense" runs every expert as two large matmuls and zeroes the
unselected ones through the gate weights (fast on a GPU when experts are
small), "sparse" groups tokens by expert (fast on a CPU).  Both record the
router logits and choices for the load-balancing loss and the routing
statistics.  verify_gguf.py checks both against the unpatched model.
"""
import math
import types

import torch
import torch.nn.functional as F

# The shipped architecture.  Sized so that the F16 GGUF stays under 64 MB.
DEFAULT_ARCH = {
    "hidden_size": 256,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_experts": 32,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 128,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
}


def make_config(vocab_size, eot_id, aux_coef, arch=None):
    from transformers import Qwen3MoeConfig
    a = dict(DEFAULT_ARCH)
    a.update(arch or {})
    return Qwen3MoeConfig(
        vocab_size=vocab_size,
        hidden_size=a["hidden_size"],
        # No dense-FFN layer exists (every layer is MoE); llama.cpp still
        # wants a feed_forward_length, so keep a meaningful value: the
        # active expert width per token.
        intermediate_size=a["moe_intermediate_size"]
        * a["num_experts_per_tok"],
        num_hidden_layers=a["num_hidden_layers"],
        num_attention_heads=a["num_attention_heads"],
        num_key_value_heads=a["num_key_value_heads"],
        head_dim=a["head_dim"],
        hidden_act="silu",
        max_position_embeddings=a["max_position_embeddings"],
        initializer_range=0.02,
        rms_norm_eps=a["rms_norm_eps"],
        use_cache=True,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default",
                         "rope_theta": a["rope_theta"]},
        attention_bias=False,
        use_sliding_window=False,
        attention_dropout=0.0,
        decoder_sparse_step=1,
        moe_intermediate_size=a["moe_intermediate_size"],
        num_experts_per_tok=a["num_experts_per_tok"],
        num_experts=a["num_experts"],
        norm_topk_prob=True,
        output_router_logits=False,
        router_aux_loss_coef=aux_coef,
        mlp_only_layers=[],
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=eot_id,
    )


def route(block, x):
    """Qwen3-MoE routing, as in transformers' Qwen3MoeTopKRouter.
    x: (N, H).  Returns logits (N, E), top-k ids (N, k), weights (N, k)."""
    gate = block.gate
    logits = F.linear(x, gate.weight)
    probs = torch.softmax(logits, dim=-1, dtype=torch.float)
    top_w, top_i = torch.topk(probs, gate.top_k, dim=-1)
    if gate.norm_topk_prob:
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
    return logits, top_i, top_w.to(logits.dtype)


def experts_dense(experts, x, top_i, top_w):
    """All experts as two big matmuls; unselected ones get weight 0, so
    values and gradients equal the sparse computation.  x: (N, H)."""
    n, h = x.shape
    e, two_i, _ = experts.gate_up_proj.shape
    inter = two_i // 2
    w = torch.zeros(n, e, dtype=top_w.dtype, device=x.device)
    w = w.scatter(1, top_i, top_w)                          # (N, E)
    gu = F.linear(x, experts.gate_up_proj.reshape(e * two_i, h))
    gu = gu.view(n, e, two_i)                               # (N, E, 2I)
    act = F.silu(gu[..., :inter]) * gu[..., inter:]         # (N, E, I)
    act = act * w.unsqueeze(-1).to(act.dtype)
    down = experts.down_proj.permute(1, 0, 2).reshape(h, e * inter)
    return F.linear(act.reshape(n, e * inter), down)        # (N, H)


def experts_sparse(experts, x, top_i, top_w):
    """Tokens grouped by expert, one small matmul pair per used expert."""
    n, h = x.shape
    k = top_i.shape[1]
    e = experts.gate_up_proj.shape[0]
    flat = top_i.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // k
    counts = torch.bincount(flat, minlength=e).tolist()
    xs = x[tok]                                             # (N*k, H)
    ws = top_w.reshape(-1)[order]
    # unbind, not indexing: indexing a parameter per expert makes its
    # backward fill a full-size zero gradient for every expert.
    gate_up = experts.gate_up_proj.unbind(0)
    down = experts.down_proj.unbind(0)
    outs = []
    start = 0
    for ex, c in enumerate(counts):
        if c == 0:
            continue
        seg = xs[start:start + c]
        g, u = F.linear(seg, gate_up[ex]).chunk(2, dim=-1)
        outs.append(F.linear(F.silu(g) * u, down[ex]))
        start += c
    y = torch.cat(outs) * ws.unsqueeze(-1).to(x.dtype)
    out = torch.zeros_like(x)
    return out.index_add_(0, tok, y.to(out.dtype))


def _moe_forward(self, hidden_states):
    b, t, h = hidden_states.shape
    x = hidden_states.reshape(-1, h)
    logits, top_i, top_w = route(self, x)
    if self.ec_record:
        self.ec_logits = logits
        self.ec_top_i = top_i
    y = self.ec_experts_fn(self.experts, x, top_i, top_w)
    return y.reshape(b, t, h)


def patch_moe(model, impl):
    """Gives every MoE block the chosen expert implementation and makes it
    record its routing.  impl: "dense", "sparse" or "hf" (record only,
    transformers' own expert loop)."""
    fns = {"dense": experts_dense, "sparse": experts_sparse,
           "hf": lambda ex, x, i, w: ex(x, i, w)}
    blocks = []
    for layer in model.model.layers:
        blk = layer.mlp
        if not hasattr(blk, "gate") or not hasattr(blk, "experts"):
            raise RuntimeError("layer without an MoE block")
        blk.ec_experts_fn = fns[impl]
        blk.ec_record = True
        blk.ec_logits = blk.ec_top_i = None
        blk.forward = types.MethodType(_moe_forward, blk)
        blocks.append(blk)
    return blocks


def aux_loss(blocks):
    """Switch-Transformer load-balancing loss, as transformers defines it
    for Qwen3-MoE (fraction of top-k routings per expert, which sums to k,
    times mean router probability, times E), averaged over layers.
    Perfect balance gives k."""
    total = 0.0
    for blk in blocks:
        logits, top_i = blk.ec_logits, blk.ec_top_i
        n, e = logits.shape
        probs = torch.softmax(logits.float(), dim=-1)
        frac = torch.zeros(e, device=logits.device, dtype=torch.float32)
        frac = frac.index_add_(0, top_i.reshape(-1),
                               torch.ones(top_i.numel(),
                                          device=logits.device)) / n
        total = total + e * torch.sum(frac * probs.mean(dim=0))
    return total / len(blocks)


class RoutingStats:
    """Accumulates per-layer expert counts and token-to-token reuse."""

    def __init__(self, n_layer, n_expert, k):
        self.n_expert, self.k = n_expert, k
        self.counts = torch.zeros(n_layer, n_expert, dtype=torch.float64)
        self.overlap = torch.zeros(n_layer, dtype=torch.float64)
        self.pairs = 0
        self.tokens = 0

    @torch.no_grad()
    def add(self, blocks, batch, seq):
        """blocks' recorded top-k ids come from a (batch, seq) forward."""
        e = self.n_expert
        for li, blk in enumerate(blocks):
            ti = blk.ec_top_i.reshape(batch, seq, -1)
            onehot = torch.zeros(batch, seq, e, device=ti.device)
            onehot.scatter_(2, ti, 1.0)
            self.counts[li] += onehot.sum(dim=(0, 1)).double().cpu()
            ov = (onehot[:, 1:] * onehot[:, :-1]).sum()
            self.overlap[li] += float(ov)
        self.tokens += batch * seq
        self.pairs += batch * (seq - 1)

    def summary(self):
        e, k = self.n_expert, self.k
        top_n = max(1, round(0.1 * e))
        layers = []
        for li in range(self.counts.shape[0]):
            c = self.counts[li]
            share = c / c.sum()
            srt = torch.sort(share, descending=True).values
            nz = share[share > 0]
            ent = float(-(nz * nz.log()).sum())
            q = c / self.tokens          # selection rate per expert (sum k)
            layers.append({
                "layer": li,
                "top10pct_experts": top_n,
                "top10pct_share": round(float(srt[:top_n].sum()), 4),
                "entropy_nats": round(ent, 4),
                "entropy_norm": round(ent / math.log(e), 4),
                "max_share": round(float(srt[0]), 4),
                "min_share": round(float(srt[-1]), 5),
                "experts_below_1pct": int((share < 0.01).sum()),
                "reuse_next_token": round(
                    float(self.overlap[li]) / (self.pairs * k), 4),
                "reuse_if_independent": round(
                    float((q * q).sum()) / k, 4),
                "share_sorted": [round(float(s), 4) for s in srt],
                "counts_by_expert": [int(x) for x in c],
            })
        return {"tokens": self.tokens, "k": k, "n_expert": e,
                "uniform_top10pct_share": round(top_n / e, 4),
                "layers": layers}
