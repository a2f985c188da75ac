#!/usr/bin/env python3
"""compare.py A.safetensors B.safetensors [LOSS_RTOL] [TENSOR_TOL]

Two `recur train` checkpoints of the same run made with different MPI rank
counts: the per-step training losses (train.loss) must agree within LOSS_RTOL
relative (default 1e-5), and every other float tensor (weights, optimizer
state, carried state, validation losses) within TENSOR_TOL of its largest
value (default 1e-4). Prints the worst differences; exit 1 when one is out.
No numpy: the safetensors header is JSON and the data little-endian F32.
"""
import json
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in head.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        lo, hi = t["data_offsets"]
        out[name] = struct.unpack("<%df" % ((hi - lo) // 4), raw[base + lo:base + hi])
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = load(sys.argv[1]), load(sys.argv[2])
    loss_rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
    bad = 0
    if set(a) != set(b):
        print("tensors differ: only in A %s, only in B %s" % (sorted(set(a) - set(b)), sorted(set(b) - set(a))))
        return 1
    la, lb = a["train.loss"][1::2], b["train.loss"][1::2]
    if len(la) != len(lb) or not la:
        print("train.loss: %d and %d steps" % (len(la), len(lb)))
        return 1
    worst = max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(la, lb))
    print("per-step training loss, %d steps: worst relative difference %.3g (tolerance %g)" % (len(la), worst, loss_rtol))
    bad |= not worst <= loss_rtol
    worst_t, worst_name = 0.0, "-"
    for name in sorted(a):
        if name == "train.loss":
            continue
        m = max(max(abs(v) for v in b[name]), 1e-30)
        d = max(abs(x - y) for x, y in zip(a[name], b[name])) / m
        if not d <= worst_t:
            worst_t, worst_name = d, name
    print("every other tensor: worst difference %.3g of its largest value (%s; tolerance %g)" % (worst_t, worst_name, tol))
    bad |= not worst_t <= tol
    print("FAILED" if bad else "ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
