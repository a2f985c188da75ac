#!/usr/bin/python3
"""Write the seed corpus of fuzz-load (tests/fuzz/corpus/): small valid recur
model files of every cell and direction, and a few corrupt ones; a training
checkpoint with Adam state (from tests/fixtures/train/) and crafted ones. Uses
save_safetensors() of tests/fixtures/recur_safetensors.py (docs/pytorch.md).
(train-lstm-embed.safetensors and train-gru-lbr-last.safetensors are copies
of tests/fixtures/train/ files, not written here.)

    /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from recur_safetensors import load_safetensors, save_safetensors  # noqa: E402

OUT = os.path.join(HERE, "corpus")
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "gru-lbr": 3}


def tensors(cell, I, H, L, direction, rng):
    D = 2 if direction.startswith("bidi") else 1
    O = 2 * H if direction == "bidi_concat" else H
    G = GATES[cell]
    out = {}
    for l in range(L):
        for d in range(D):
            s = "_l%d%s" % (l, "_reverse" if d else "")
            out["weight_ih" + s] = rng.uniform(-0.5, 0.5, (G * H, I if l == 0 else O))
            out["weight_hh" + s] = rng.uniform(-0.5, 0.5, (G * H, H))
            out["bias_ih" + s] = rng.uniform(-0.5, 0.5, (G * H,))
            out["bias_hh" + s] = rng.uniform(-0.5, 0.5, (G * H,))
    return out


def meta(cell, I, H, L, direction, variant="", full=True, dropout="0", seed="0"):
    m = {"cell": cell, "input_size": I, "hidden_size": H, "num_layers": L, "direction": direction}
    if full:
        m = dict(format="recur", recur_version="0.1.0", variant=variant, dropout=dropout, seed=seed, **m)
    return m


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def training(rng):
    """A training checkpoint: the net of tests/fixtures/train/lstm-embed-all-
    xent-adam (V 7, I 5, H 6, 2 layers, head K 7) with Adam state, groups as
    recur_file_put_optim writes them ("own": embedding and head; "rnn.l<k>":
    a layer's [W_ih, W_hh, b_ih, b_hh]); then the same with state that cannot
    be (NaN, a negative second moment) and with a decimal-comma dropout."""
    src = os.path.join(HERE, "..", "fixtures", "train", "lstm-embed-all-xent-adam.safetensors")
    tensors, meta = load_safetensors(src)
    meta = {k: v for k, v in meta.items() if not k.startswith("test.")}
    tensors = {k: v for k, v in tensors.items() if k.split(".")[0] in ("embedding", "rnn", "head")}
    V, I, H, K, G = 7, 5, 6, 7, 4
    groups = {"own": V * I + K * H + K, "rnn.l0": G * H * (I + H + 2), "rnn.l1": G * H * (H + H + 2)}
    state = {}
    for g, count in groups.items():
        state["optim.%s.m" % g] = rng.uniform(-0.01, 0.01, (count,))
        state["optim.%s.v" % g] = rng.uniform(0, 1e-4, (count,))
    meta.update({"optim.kind": "adam", "optim.lr": "0.01", "optim.momentum": "0", "optim.beta1": "0.9",
                 "optim.beta2": "0.999", "optim.eps": "1e-08", "optim.weight_decay": "0", "optim.clip_norm": "0.5",
                 "optim.steps": "4", "optim.groups": str(len(groups))})

    def save(name, state, meta):
        save_safetensors(os.path.join(OUT, name), dict(tensors, **state), meta)

    save("train-adam-state.safetensors", state, meta)
    nan = dict(state, **{"optim.rnn.l0.m": state["optim.rnn.l0.m"].copy()})
    nan["optim.rnn.l0.m"][3] = np.nan
    save("train-nan-optim-state.safetensors", nan, meta)
    neg = dict(state, **{"optim.own.v": state["optim.own.v"].copy()})
    neg["optim.own.v"][0] = -1.0
    save("train-negative-adam-v.safetensors", neg, meta)
    save("train-decimal-comma.safetensors", state, dict(meta, dropout="0,25"))
    # the loss scale's state (recur_optim_set_loss_scale): valid, and a scale past 2^100
    scaled = dict(meta, **{"optim.loss_scale_log2": "20", "optim.loss_scale_good": "5", "optim.skipped": "3"})
    save("train-loss-scale.safetensors", state, scaled)
    save("train-bad-loss-scale.safetensors", state, dict(scaled, **{"optim.loss_scale_log2": "200"}))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(12345)
    valid = [
        ("valid-lstm-forward", ("lstm", 2, 3, 1, "forward"), {}),
        ("valid-lstm-bidi-target", ("lstm", 2, 3, 2, "bidi_concat"), {}),  # fuzz-load's load_weights target
        ("valid-gru-bidi-sum", ("gru", 1, 2, 2, "bidi_sum"), {}),
        ("valid-rnn-relu-reverse", ("rnn", 3, 2, 1, "reverse"), dict(variant="relu", dropout="0.5", seed="123")),
        ("valid-gru-lbr-minimal-metadata", ("gru-lbr", 2, 3, 2, "bidi_concat"), dict(full=False)),
    ]
    for name, (cell, I, H, L, d), kw in valid:
        save_safetensors(os.path.join(OUT, name), tensors(cell, I, H, L, d, rng), meta(cell, I, H, L, d, **kw))
    # a plain state_dict of the target's shape: load_weights takes it, load does not
    save_safetensors(os.path.join(OUT, "plain-state-dict"), tensors("lstm", 2, 3, 2, "bidi_concat", rng), {})

    good = open(os.path.join(OUT, "valid-lstm-forward"), "rb").read()
    n = int.from_bytes(good[:8], "little")
    header, data = good[8:8 + n], good[8 + n:]

    def with_header(h):
        h = h + b" " * (-len(h) % 8)
        return len(h).to_bytes(8, "little") + h + data

    write("bad-truncated", good[:len(good) - 5])
    write("bad-short", good[:5])
    write("bad-header-length", (1 << 40).to_bytes(8, "little") + good[8:])
    write("bad-json", with_header(header.replace(b'"dtype":"F32"', b'"dtype":"F32', 1)))
    write("bad-dtype", with_header(header.replace(b'"F32"', b'"F64"', 1)))
    write("bad-shape", with_header(header.replace(b'"shape":[12,2]', b'"shape":[2,12]', 1)))
    write("bad-offsets-overlap", with_header(header.replace(b"[96,240]", b"[92,236]", 1)))
    write("bad-metadata", with_header(header.replace(b'"hidden_size":"3"', b'"hidden_size":"4"', 1)))
    nan = bytearray(good)
    nan[8 + n + 12:8 + n + 16] = np.array([np.nan], dtype="<f4").tobytes()
    write("bad-nan", bytes(nan))
    # what an application under a decimal-comma locale (de_DE.UTF-8) wrote
    # before recur's numbers ignored the locale: refused, naming the value
    write("bad-metadata-decimal-comma", with_header(header.replace(b'"dropout":"0"', b'"dropout":"0,5"', 1)))
    # the direction in recur_direction_name's spelling: read as bidi_concat
    save_safetensors(os.path.join(OUT, "valid-lstm-bidi-dash"), tensors("lstm", 2, 3, 2, "bidi_concat", rng),
                     meta("lstm", 2, 3, 2, "bidi-concat"))
    training(rng)
    # a state_dict saved by torch in half precision, each kind (own rng: the
    # files above stay as they were)
    half = np.random.default_rng(777)
    save_safetensors(os.path.join(OUT, "valid-lstm-bf16"), tensors("lstm", 2, 3, 1, "forward", half),
                     meta("lstm", 2, 3, 1, "forward"), dtype="BF16")
    save_safetensors(os.path.join(OUT, "valid-gru-lbr-f16"), tensors("gru-lbr", 2, 3, 2, "bidi_concat", half),
                     meta("gru-lbr", 2, 3, 2, "bidi_concat"), dtype="F16")
    # an LSTM with projection (proj_size 2 of H 3: weight_hr_l<k> [2, 3], weight_hh [12, 2]), and one
    # whose metadata claims proj_size 3 = hidden_size (refused, naming it); own rng, as above
    proj = np.random.default_rng(4242)
    pt = {}
    for l in range(2):
        for d in range(2):
            s_ = "_l%d%s" % (l, "_reverse" if d else "")
            pt["weight_ih" + s_] = proj.uniform(-0.5, 0.5, (12, 2 if l == 0 else 4))
            pt["weight_hh" + s_] = proj.uniform(-0.5, 0.5, (12, 2))
            pt["bias_ih" + s_] = proj.uniform(-0.5, 0.5, (12,))
            pt["bias_hh" + s_] = proj.uniform(-0.5, 0.5, (12,))
            pt["weight_hr" + s_] = proj.uniform(-0.5, 0.5, (2, 3))
    pm = dict(meta("lstm", 2, 3, 2, "bidi_concat"), proj_size=2)
    save_safetensors(os.path.join(OUT, "valid-lstm-proj"), pt, pm)
    save_safetensors(os.path.join(OUT, "bad-proj-size"), pt, dict(pm, proj_size=3))
    for f in sorted(os.listdir(OUT)):
        print("%-34s %5d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == "__main__":
    main()
