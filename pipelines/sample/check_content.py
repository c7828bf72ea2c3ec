#!/usr/bin/env python3
"""Checks the sample web's content files against the English master.

Every language file must have the master's intents and chrome keys, the same
placeholders in each text, no question mark in answers (WebFAQ's filter
drops those), and texts long enough to survive the clean filters
(questions >= 10 characters, answers >= 30, placeholders counted as 6).

    python3 pipelines/sample/check_content.py [LANG ...]
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "content"
SLOT = re.compile(r"\{[a-z0-9_]+\}")


def slots(text):
    return sorted(SLOT.findall(text))


def check(lang, master):
    path = HERE / f"{lang}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"{path}: {e}"]
    problems = []
    if data.get("language") != lang:
        problems.append(f"{lang}: `language` is {data.get('language')!r}")
    for key in master["chrome"]:
        if not data.get("chrome", {}).get(key):
            problems.append(f"{lang}: chrome.{key} missing")
    for intent, qa in master["intents"].items():
        got = data.get("intents", {}).get(intent)
        if not got:
            problems.append(f"{lang}: intent {intent} missing")
            continue
        for side, minimum in (("q", 10), ("a", 30)):
            text = got.get(side, "")
            if slots(text) != slots(qa[side]):
                problems.append(
                    f"{lang}.{intent}.{side}: placeholders {slots(text)} != {slots(qa[side])}"
                )
            if "\n" in text:
                problems.append(f"{lang}.{intent}.{side}: newline")
            if len(SLOT.sub("xxxxxx", text)) < minimum:
                problems.append(f"{lang}.{intent}.{side}: shorter than {minimum} characters")
        if any(mark in got.get("a", "") for mark in "?？؟"):
            problems.append(f"{lang}.{intent}.a: contains a question mark")
    extra = set(data.get("intents", {})) - set(master["intents"])
    if extra:
        problems.append(f"{lang}: unknown intents {sorted(extra)}")
    return problems


def main():
    master = json.loads((HERE / "en.json").read_text(encoding="utf-8"))
    langs = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.json"))
    problems = [p for lang in langs for p in check(lang, master)]
    for p in problems:
        print(p)
    print(f"{len(langs)} language file(s), {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
