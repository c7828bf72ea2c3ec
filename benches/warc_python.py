#!/usr/bin/env python3
"""Iterates every record of a WARC with FastWARC and with warcio, reading
each HTTP payload (the work a reader must do at least), and prints MB/s of
compressed input.   pip install fastwarc warcio"""
import os
import sys
import time

path = sys.argv[1]
size = os.path.getsize(path) / 1e6

def fastwarc_run():
    from fastwarc.warc import ArchiveIterator
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, parse_http=True):
            rec.reader.read()
            n += 1
    return n

def warcio_run():
    from warcio.archiveiterator import ArchiveIterator
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            rec.content_stream().read()
            n += 1
    return n

for name, fn in [("fastwarc", fastwarc_run), ("warcio", warcio_run)]:
    t = time.time()
    n = fn()
    dt = time.time() - t
    print(f"{name}: {n} records in {dt:.2f} s = {size / dt:.1f} MB/s (compressed)")
