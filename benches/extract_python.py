#!/usr/bin/env python3
"""Python extruct (json-ld + microdata + rdfa) on the same pages as
benches/extract_pages.rs, one core: best of ROUNDS.

    pip install extruct==0.18.0
    python3 benches/extract_python.py ../shared/data/faq-pages [ROUNDS]
"""
import os
import sys
import time

import extruct

root = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/faq-pages"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
pages = []
for d, _, fs in sorted(os.walk(root)):
    for f in sorted(fs):
        with open(os.path.join(d, f), "rb") as fh:
            pages.append(fh.read().decode("utf-8", errors="replace"))
size = sum(len(p.encode()) for p in pages)
best = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    for p in pages:
        extruct.extract(p, base_url="https://example.com/", syntaxes=["json-ld", "microdata", "rdfa"], errors="ignore", uniform=False)
    best = min(best, time.perf_counter() - t)
print(f"extruct      {len(pages):>4} pages {size/1e6:>6.1f} MB  best of {rounds}: {best:.3f} s  {len(pages)/best:>7.0f} pages/s  {size/1e6/best:>6.1f} MB/s")
