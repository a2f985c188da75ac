#!/usr/bin/python3
"""Train recur's default language model and the same model in PyTorch, and
compare their validation losses (and training speed).

    /usr/bin/python3 bench/torch_compare.py [--recur build/tools/recur]
        [--steps 300] [--out /tmp/recur-vs-torch] [-- extra `recur train` options]

1. `recur train --steps 0` writes the initialised checkpoint: the weights
   both runs start from, and every setting of the run in its metadata.
2. `recur train --steps S` trains; `recur eval` gives its validation loss.
3. PyTorch loads the same initial weights (the checkpoint's tensor names are
   those of a module with members embedding, rnn, head), rebuilds the same
   data (tools/data.c's corpus_load: the file's lines, shuffled by
   Fisher-Yates with splitmix64, the last val_frac of them for validation)
   and batches (tools/train.c: N columns, chunks of T, the state carried and
   reset at each epoch), and trains with the same optimizer and clipping.
4. Both validation losses are computed the same way: N columns of the
   validation text, chunks of T, carried state, mean cross-entropy.

Needs Debian's python3-torch; CI does not run it (bench/, not tests/).
"""
import argparse
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from recur_safetensors import load_safetensors  # noqa: E402

MASK = (1 << 64) - 1
SEED_SHUFFLE = 5  # tools/tool.h


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def run_seed(seed, which):
    s, x = seed, 0
    for _ in range(which + 1):
        s, x = splitmix(s)
    return x


def rng_below(state, n):
    """tools/data.c's rng_below: reject the lowest 2^64 mod n values."""
    threshold = (1 << 64) % n
    while True:
        state, x = splitmix(state)
        if x >= threshold:
            return state, x % n


def corpus_load(path, shuffle_seed, val_frac):
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln + b"\n" for ln in lines]
    if shuffle_seed:
        s = shuffle_seed
        for i in range(len(lines) - 1, 0, -1):
            s, j = rng_below(s, i + 1)
            lines[i], lines[j] = lines[j], lines[i]
    n_val = max(1, int(len(lines) * val_frac))
    train, val = b"".join(lines[:-n_val]), b"".join(lines[-n_val:])
    vocab = sorted(set(data) | {ord("\n")})
    ids = np.full(256, -1, dtype=np.int64)
    ids[vocab] = np.arange(len(vocab))
    return ids[np.frombuffer(train, dtype=np.uint8)], ids[np.frombuffer(val, dtype=np.uint8)], len(vocab)


class Net(torch.nn.Module):
    def __init__(self, cell, V, E, H, L):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E)
        self.rnn = {"lstm": torch.nn.LSTM, "gru-lbr": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](E, H, num_layers=L)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x, state):
        y, state = self.rnn(self.embedding(x), state)
        return self.head(y), state


def columns(stream, N):
    cl = len(stream) // N
    return torch.from_numpy(stream[:cl * N].reshape(N, cl).T.copy()), cl  # [cl, N]


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def val_loss(net, val, N, T):
    cols, cl = columns(val, N)
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for p in range(0, cl - 1, T):  # every target, the last chunk shorter (tools/task.c)
            t = min(T, cl - 1 - p)
            z, state = net(cols[p:p + t], state)
            total += torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), cols[p + 1:p + t + 1].reshape(-1),
                                                       reduction="sum").item()
            count += t * N
    return total / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur", default="build/tools/recur")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="/tmp/recur-vs-torch")
    ap.add_argument("extra", nargs="*")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads (recur uses OpenMP's default)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    init_dir, run_dir = os.path.join(a.out, "init"), os.path.join(a.out, "recur")
    base = [a.recur, "train", "--quiet", "--samples", "0"] + a.extra
    subprocess.run(base + ["--steps", "0", "--out", init_dir], check=True)
    t0 = time.time()
    subprocess.run(base + ["--steps", str(a.steps), "--out", run_dir], check=True)
    recur_s = time.time() - t0
    w, meta = load_safetensors(os.path.join(init_dir, "checkpoint.safetensors"))
    assert meta["recur.task"] == "lm", "torch_compare.py compares the lm task"
    N, T = int(meta["recur.batch"]), int(meta["recur.bptt"])
    shuffle = run_seed(int(meta["recur.seed"]), SEED_SHUFFLE) or 1 if meta["recur.shuffle"] != "0" else 0
    train, val, V = corpus_load(meta["recur.corpus"], shuffle, float(meta["recur.val_frac"]))
    net = Net(meta["cell"], V, int(meta["input_size"]), int(meta["hidden_size"]), int(meta["num_layers"]))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items() if k.split(".")[0] in ("embedding", "rnn", "head")})
    lr, clip = float(meta["optim.lr"]), float(meta["optim.clip_norm"])
    if meta["optim.kind"] == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(float(meta["optim.beta1"]), float(meta["optim.beta2"])),
                               eps=float(meta["optim.eps"]), weight_decay=float(meta["optim.weight_decay"]))
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=float(meta["optim.momentum"]),
                              weight_decay=float(meta["optim.weight_decay"]))
    cols, cl = columns(train, N)
    chunks = (cl - 1) // T
    state = None
    t0 = time.time()
    for k in range(a.steps):
        if k % chunks == 0:
            state = None
        p = (k % chunks) * T
        opt.zero_grad()
        z, state = net(cols[p:p + T], state)
        loss = torch.nn.functional.cross_entropy(z.reshape(-1, V), cols[p + 1:p + T + 1].reshape(-1))
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        state = detach(state)
    torch_s = time.time() - t0
    torch_val = val_loss(net, val, N, T)
    out = subprocess.run([a.recur, "eval", "--model", os.path.join(run_dir, "checkpoint.safetensors")],
                         check=True, capture_output=True, text=True).stdout
    print(out.strip())
    recur_val = None
    for tok in out.replace("=", " ").split():
        try:
            recur_val = float(tok)
            break
        except ValueError:
            pass
    print("steps %d, batch %d x %d, vocab %d" % (a.steps, N, T, V))
    print("validation loss (nats/char): recur %.4f, PyTorch %.4f, recur/PyTorch %.4f"
          % (recur_val, torch_val, recur_val / torch_val))
    tok = a.steps * N * T
    print("training time: recur %.1f s (%.0f tok/s, whole command), PyTorch %.1f s (%.0f tok/s, %d threads)"
          % (recur_s, tok / recur_s, torch_s, tok / torch_s, torch.get_num_threads()))
    return 0 if abs(recur_val / torch_val - 1) <= 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
