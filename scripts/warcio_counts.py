#!/usr/bin/env python3
"""Record counts by type of every WARC in ../shared/data/warc, as Python's
warcio reports them. Output: operators/web/tests/warcio_counts.json.

    pip install warcio==1.8.1
    python3 scripts/warcio_counts.py > operators/web/tests/warcio_counts.json
"""
import glob
import json
import os
import sys

from warcio.archiveiterator import ArchiveIterator

root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "warc")
out = {}
for path in sorted(glob.glob(os.path.join(root, "*"))):
    counts = {}
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            counts[rec.rec_type] = counts.get(rec.rec_type, 0) + 1
    out[os.path.basename(path)] = dict(sorted(counts.items()))
json.dump(out, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
