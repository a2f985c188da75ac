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

--precision f32,bf16 (issue 10) trains each side once per precision from the same
initial weights: recur with `recur train --precision P`, PyTorch with its forward and loss
under torch.autocast("cpu", dtype=torch.bfloat16) (float32 master weights, as recur's),
and prints the end-to-end training throughput of each (tokens = characters per second;
recur's as it counts its training steps, and of the whole command) and the validation
losses, then a table and the bf16/f32 throughput ratios of both. A short --steps (50) is
enough for the throughput:

    /usr/bin/python3 bench/torch_compare.py --steps 50 --threads 2 --precision f32,bf16

Needs Debian's python3-torch; CI does not run it (bench/, not tests/).
"""
import argparse
import contextlib
import math
import os
import re
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


def recur_train(a, base, p, run_dir):
    """recur train --precision p; (seconds of the whole command, tokens/s of its training steps
    as it reports them, validation loss by recur eval), or None after printing why it refused."""
    t0 = time.time()
    r = subprocess.run(base + ["--steps", str(a.steps), "--out", run_dir, "--precision", p],
                       capture_output=True, text=True)
    recur_s = time.time() - t0
    if r.returncode != 0:
        print("recur train --precision %s: exit %d: %s" % (p, r.returncode, r.stderr.strip()))
        return None
    m = re.search(r"^\d+ steps in .*, (\d+) tokens/s$", r.stdout, re.M)
    out = subprocess.run([a.recur, "eval", "--model", os.path.join(run_dir, "checkpoint.safetensors")],
                         check=True, capture_output=True, text=True).stdout
    print("recur %s: %s" % (p, out.strip()))
    recur_val = None
    for tok in out.replace("=", " ").split():
        try:
            recur_val = float(tok)
            break
        except ValueError:
            pass
    return recur_s, float(m.group(1)) if m else float("nan"), recur_val


def torch_train(a, meta, w, data, p):
    """The same run in PyTorch; p "bf16": forward and loss under torch.autocast("cpu", bfloat16)
    (its master weights, optimizer and backward stay float32, as recur's). (seconds of the
    training loop, its first two steps left out and the rest scaled to every step, validation
    loss, the dtype autocast gave the recurrent layer's output)."""
    train, val, V = data
    N, T = int(meta["recur.batch"]), int(meta["recur.bptt"])
    net = Net(meta["cell"], V, int(meta["input_size"]), int(meta["hidden_size"]), int(meta["num_layers"]))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items() if k.split(".")[0] in ("embedding", "rnn", "head")})
    lr, clip = float(meta["optim.lr"]), float(meta["optim.clip_norm"])
    if meta["optim.kind"] == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(float(meta["optim.beta1"]), float(meta["optim.beta2"])),
                               eps=float(meta["optim.eps"]), weight_decay=float(meta["optim.weight_decay"]))
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=float(meta["optim.momentum"]),
                              weight_decay=float(meta["optim.weight_decay"]))
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if p == "bf16" else contextlib.nullcontext
    with torch.no_grad(), amp():
        rnn_dtype = net.rnn(net.embedding(torch.zeros(1, 1, dtype=torch.long)))[0].dtype
    cols, cl = columns(train, N)
    chunks = (cl - 1) // T
    state = None
    warm = min(2, a.steps - 1)  # the first steps (PyTorch's one-time set-up) are not timed
    t0 = time.time()
    for k in range(a.steps):
        if k == warm:
            t0 = time.time()
        if k % chunks == 0:
            state = None
        p0 = (k % chunks) * T
        opt.zero_grad()
        with amp():
            z, state = net(cols[p0:p0 + T], state)
            loss = torch.nn.functional.cross_entropy(z.float().reshape(-1, V), cols[p0 + 1:p0 + T + 1].reshape(-1))
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        state = detach(state)
    torch_s = (time.time() - t0) * a.steps / (a.steps - warm)  # as if every step took the timed ones' mean
    with amp():
        torch_val = val_loss(net, val, N, T)
    return torch_s, torch_val, rnn_dtype


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur", default="build/tools/recur")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="/tmp/recur-vs-torch")
    ap.add_argument("extra", nargs="*")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads (recur uses OpenMP's default)")
    ap.add_argument("--precision", default="f32",
                    help="comma-separated precisions of the products, e.g. f32,bf16: recur (recur train --precision P) "
                         "and PyTorch (bf16: torch.autocast on the CPU) train once in each, from the same weights")
    a = ap.parse_args()
    precs = a.precision.split(",")
    torch.set_num_threads(a.threads)
    init_dir = os.path.join(a.out, "init")
    base = [a.recur, "train", "--quiet", "--samples", "0"] + a.extra
    subprocess.run(base + ["--steps", "0", "--out", init_dir], check=True)
    w, meta = load_safetensors(os.path.join(init_dir, "checkpoint.safetensors"))
    assert meta["recur.task"] == "lm", "torch_compare.py compares the lm task"
    N, T = int(meta["recur.batch"]), int(meta["recur.bptt"])
    shuffle = run_seed(int(meta["recur.seed"]), SEED_SHUFFLE) or 1 if meta["recur.shuffle"] != "0" else 0
    data = corpus_load(meta["recur.corpus"], shuffle, float(meta["recur.val_frac"]))
    print("steps %d, batch %d x %d, vocab %d" % (a.steps, N, T, data[2]))
    tok = a.steps * N * T
    rc, rows = 0, []
    for p in precs:
        got = recur_train(a, base, p, os.path.join(a.out, "recur" if p == "f32" else "recur-" + p))
        if got is None:
            rc = 1
            continue
        recur_s, recur_tps, recur_val = got
        if p in ("f32", "bf16"):
            torch_s, torch_val, rnn_dtype = torch_train(a, meta, w, data, p)
        else:  # PyTorch's CPU autocast has bf16 only
            torch_s, torch_val, rnn_dtype = float("nan"), float("nan"), None
        print("%s: validation loss (nats/char): recur %.4f, PyTorch %.4f, recur/PyTorch %.4f"
              % (p, recur_val, torch_val, recur_val / torch_val))
        print("%s: training time: recur %.1f s (%.0f tok/s, whole command; %.0f tok/s its training steps), "
              "PyTorch %.1f s (%.0f tok/s, %d threads%s)"
              % (p, recur_s, tok / recur_s, recur_tps, torch_s, tok / torch_s, torch.get_num_threads(),
                 "" if p == "f32" or rnn_dtype is None else ", autocast: the %s layer's output %s"
                 % (meta["cell"], str(rnn_dtype).replace("torch.", ""))))
        rows.append((p, recur_tps, tok / torch_s, recur_val, torch_val))
        if not abs(recur_val / torch_val - 1) <= 0.03 and p in ("f32", "bf16"):
            rc = 1
    if len(rows) > 1:  # the table of the run: training tokens (characters) per second
        print("\n%-9s %12s %14s %13s %10s %10s" % ("precision", "recur tok/s", "PyTorch tok/s", "recur/PyTorch",
                                                  "recur val", "PyT val"))
        for p, rt, pt, rv, pv in rows:
            print("%-9s %12.0f %14.0f %13.2f %10.4f %10.4f" % (p, rt, pt, rt / pt, rv, pv))
        f = [r for r in rows if r[0] == "f32"]
        for r in rows:
            if f and r[0] != "f32":
                print("%s against f32 in this run: recur %.2fx the tokens/s, PyTorch %.2fx"
                      % (r[0], r[1] / f[0][1], r[2] / f[0][2]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
