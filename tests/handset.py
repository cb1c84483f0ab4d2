"""A hand-set model with a known mechanism (shared by tests/unit/test_custom_tasks.py and the notebook's claims).

Prompts are ``[a, b, =]`` (digits 0-9, ``=`` is token 10), the answer is ``a`` (copy the first operand):

* head L0H0 attends from ``=`` to position 0 and copies ``a`` into dims 16-25 of the residual stream;
* head L0H1 attends somewhere but writes nothing (``W_O = 0``): effect exactly 0;
* MLP neuron j (0-9) fires (0.5) iff the copied digit is j and writes the logit of token j (+5);
* neuron 10 fires on every ``=`` but writes nothing (``W_out = 0``): a distractor with effect exactly 0;
* ``=`` gets logit +1 from the ``=`` flag, so without its neuron a prompt is answered wrongly.
"""

from __future__ import annotations

import torch

EQ = 10
DISTRACTOR = 10


def handset_bridge():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = TransformerBridgeConfig(d_model=32, d_head=10, n_heads=2, n_layers=1, d_mlp=11, d_vocab=12, n_ctx=3,
                                  act_fn="relu", normalization_type=None, seed=0)
    b = TransformerBridge.boot_native(cfg)
    m = b.original_model
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        emb, pos = m.tok_embed._original_component.weight, m.pos._original_component.weight
        for t in range(11):
            emb[t, t] = 1.0  # digits 0-9 -> dims 0-9, "=" -> dim 10
        for i in range(3):
            pos[i, 12 + i] = 1.0  # position one-hot in dims 12-14
        attn = m.layers[0]._original_component.attn._original_component
        q, k = attn.q._original_component.weight, attn.k._original_component.weight
        v, o = attn.v._original_component.weight, attn.o._original_component.weight
        q[0, 10] = 10.0  # head 0: the "=" query ...
        k[0, 12] = 10.0  # ... meets the position-0 key: score 100 / sqrt(10)
        for j in range(10):
            v[j, j] = 1.0  # head 0 reads the digit
            o[16 + j, j] = 1.0  # and writes it to dims 16-25
        g = torch.Generator().manual_seed(0)
        q[10:20] = torch.randn(10, 32, generator=g)  # head 1: some attention pattern and values ...
        k[10:20] = torch.randn(10, 32, generator=g)
        v[10:20] = torch.randn(10, 32, generator=g)  # ... but W_O = 0: it writes nothing
        mlp = m.layers[0]._original_component.mlp._original_component
        w_in, b_in = mlp.fc_in._original_component.weight, mlp.fc_in._original_component.bias
        w_out = mlp.fc_out._original_component.weight
        for j in range(10):
            w_in[j, 16 + j], b_in[j] = 1.0, -0.5  # neuron j: copied digit == j
            w_out[j, j] = 1.0  # writes dim j
        w_in[DISTRACTOR, 10] = 1.0  # the distractor fires on "=" and writes nothing
        head = m.head._original_component.weight
        for j in range(10):
            head[j, j] = 10.0
        head[EQ, 10] = 1.0
    b.enable_compatibility_mode()
    b.eval()
    return b


def grid_rows():
    """``(a, b, result, tokens, answer_token)`` of every prompt ``[a, b, =]``."""
    return [(a, b, a, [a, b, EQ], a) for a in range(10) for b in range(10)]
