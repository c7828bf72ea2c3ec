#!/usr/bin/env python3
"""Builds the WARC throughput input: the complete gzip members of
../shared/data/warc/resiliparse-warcfile.warc.gz (its last member is cut),
repeated until the file is at least SIZE_MB megabytes.

    python3 benches/warc_prepare.py OUT.warc.gz [SIZE_MB]
"""
import os
import sys
import zlib

src = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "warc",
                   "resiliparse-warcfile.warc.gz")
out, size_mb = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
data = open(src, "rb").read()
members, pos = [], 0
while pos < len(data):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        d.decompress(data[pos:])
    except zlib.error:
        break
    if not d.eof:
        break  # truncated member
    end = len(data) - len(d.unused_data)
    members.append(data[pos:end])
    pos = end
block = b"".join(members)
with open(out, "wb") as f:
    written = 0
    while written < size_mb * 1_000_000:
        f.write(block)
        written += len(block)
print(f"{len(members)} complete members, {written / 1e6:.1f} MB -> {out}")
