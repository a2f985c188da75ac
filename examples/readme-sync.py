#!/usr/bin/env python3
"""readme-sync.py README.md hello.c: exit 1 unless hello.c holds README's first C example."""
import sys

readme, hello = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
start = readme.index("```c\n") + len("```c\n")
code = readme[start:readme.index("```\n", start)]
if code not in hello:
    sys.exit("examples/hello.c differs from README.md's C example: copy the example again")
