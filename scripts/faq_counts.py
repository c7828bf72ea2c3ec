#!/usr/bin/env python3
"""Counts the FAQPage questions (with an accepted answer text) of every page
in ../shared/data/faq-pages, per markup syntax, with Python `extruct`.

The output is the expectation of operators/web/tests/faq_pages.rs:
    pip install extruct==0.18.0
    python3 scripts/faq_counts.py ../shared/data/faq-pages > operators/web/tests/faq_counts.json

A question counts once per page and syntax (distinct question+answer text).
JSON-LD blocks that are not valid JSON are skipped by extruct (errors='ignore');
dflow repairs some of them, and the test lists those pages by name.
"""
import json
import os
import sys

import extruct

SCHEMA = ("http://schema.org/", "https://schema.org/", "schema:")


def local(name):
    if not isinstance(name, str):
        return ""
    for p in SCHEMA:
        if name.startswith(p):
            return name[len(p):].strip("/")
    return name


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def types_of(node):
    return [local(t) for t in as_list(node.get("@type"))]


def jsonld_pairs(items):
    nodes = []

    def walk(v):
        if isinstance(v, dict):
            nodes.append(v)
            for k, x in v.items():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(items)
    by_id = {n["@id"]: n for n in nodes if isinstance(n.get("@id"), str) and len(n) > 1}

    def resolve(v):
        if isinstance(v, dict) and set(v) <= {"@id", "@context"} and v.get("@id") in by_id:
            return by_id[v["@id"]]
        return v

    def text(node, *props):
        for p in props:
            for v in as_list(node.get(p)):
                if isinstance(v, str) and v.strip():
                    return v
                if isinstance(v, dict) and isinstance(v.get("@value"), str):
                    return v["@value"]
        return None

    pairs = []
    for n in nodes:
        if "FAQPage" not in types_of(n):
            continue
        for q in as_list(n.get("mainEntity")):
            q = resolve(q)
            if not isinstance(q, dict):
                continue
            if types_of(q) and "Question" not in types_of(q):
                continue
            name = text(q, "name", "text")
            ans = None
            for a in as_list(q.get("acceptedAnswer")):
                a = resolve(a)
                if isinstance(a, str) and a.strip():
                    ans = a
                elif isinstance(a, dict):
                    ans = text(a, "text", "name")
                if ans:
                    break
            if name and ans:
                pairs.append((name.strip(), ans.strip()))
    return pairs


def microdata_pairs(items):
    pairs = []

    def walk(item):
        if not isinstance(item, dict):
            return
        types = [local(t) for t in as_list(item.get("type"))]
        props = item.get("properties", {})
        if "FAQPage" in types:
            for q in as_list(props.get("mainEntity")):
                if not isinstance(q, dict):
                    continue
                qp = q.get("properties", {})
                name = next((x for x in as_list(qp.get("name")) if isinstance(x, str)), None)
                ans = None
                for a in as_list(qp.get("acceptedAnswer")):
                    if isinstance(a, dict):
                        ans = next((x for x in as_list(a.get("properties", {}).get("text")) if isinstance(x, str)), None)
                    if ans:
                        break
                if name and name.strip() and ans and ans.strip():
                    pairs.append((name.strip(), ans.strip()))
        for v in props.values():
            for x in as_list(v):
                walk(x)

    for it in items:
        walk(it)
    return pairs


def rdfa_pairs(nodes):
    by_id = {n.get("@id"): n for n in nodes if isinstance(n, dict)}

    def vals(node, prop):
        out = []
        for k, v in node.items():
            if local(k) == prop:
                out.extend(as_list(v))
        return out

    def text(node, prop):
        for v in vals(node, prop):
            if isinstance(v, dict) and "@value" in v and str(v["@value"]).strip():
                return str(v["@value"])
        return None

    pairs = []
    for n in nodes:
        if "FAQPage" not in types_of(n):
            continue
        for ref in vals(n, "mainEntity"):
            q = by_id.get(ref.get("@id")) if isinstance(ref, dict) else None
            if not q:
                continue
            name = text(q, "name")
            ans = None
            for aref in vals(q, "acceptedAnswer"):
                a = by_id.get(aref.get("@id")) if isinstance(aref, dict) else None
                if a:
                    ans = text(a, "text")
                if ans:
                    break
            if name and ans:
                pairs.append((name.strip(), ans.strip()))
    return pairs


def main(root):
    out = {}
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            with open(path, "rb") as fh:
                raw = fh.read()
            html = raw.decode("utf-8", errors="replace")
            data = extruct.extract(
                html,
                base_url="https://example.com/",
                syntaxes=["json-ld", "microdata", "rdfa"],
                errors="ignore",
                uniform=False,
            )
            counts = {}
            for key, fn in (("json-ld", jsonld_pairs), ("microdata", microdata_pairs), ("rdfa", rdfa_pairs)):
                pairs = fn(data.get(key, []))
                n = len(dict.fromkeys(pairs))
                if n:
                    counts[key] = n
            out[rel] = counts
    json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/faq-pages")
