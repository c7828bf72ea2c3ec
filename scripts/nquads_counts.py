#!/usr/bin/env python3
"""FAQ pairs per page of the Web Data Commons N-Quads sample, with rdflib:
the expectation of operators/web/tests/faq_pages.rs.

    pip install rdflib==7.*
    python3 scripts/nquads_counts.py ../shared/data/faq-nquads/webfaq-FAQPage_sample.nq.gz \
        > operators/web/tests/nquads_counts.json

A pair is a Question that a FAQPage names as mainEntity, with a non-empty
name and an acceptedAnswer whose text is non-empty; each Question once.
"""
import gzip
import json
import sys

from rdflib import Dataset, Literal, URIRef
from rdflib.namespace import RDF

S = "http://schema.org/"
ds = Dataset()
with gzip.open(sys.argv[1], "rb") as f:
    ds.parse(data=f.read(), format="nquads")
out = {}
for g in ds.graphs():
    if not isinstance(g.identifier, URIRef) or str(g.identifier).startswith("urn:x-rdflib"):
        continue
    n = 0
    for page in g.subjects(RDF.type, URIRef(S + "FAQPage")):
        for q in g.objects(page, URIRef(S + "mainEntity")):
            names = [o for o in g.objects(q, URIRef(S + "name")) if isinstance(o, Literal) and str(o).strip()]
            answers = [
                t
                for a in g.objects(q, URIRef(S + "acceptedAnswer"))
                for t in g.objects(a, URIRef(S + "text"))
                if isinstance(t, Literal) and str(t).strip()
            ]
            if names and answers:
                n += 1
    if n or any(True for _ in g.triples((None, None, None))):
        out[str(g.identifier)] = n
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
