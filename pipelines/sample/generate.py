#!/usr/bin/env python3
"""Builds dflow's bundled sample web from the content files in `content/`.

The sample is a small fictional web written for this project: 46 business
sites (40 in release 1, 6 more in release 2, which also adds languages to
some release-1 sites), each with an FAQ page per language in 16 languages
and six scripts. The FAQ entries are the 28 intents of `content/en.json`,
translated in `content/{lang}.json`; a site fills the placeholders with its
own facts ({name}, {days}, {price}, ...), the same in every language, so
the translations of one site align. Pages carry the FAQ as JSON-LD,
microdata or RDFa, and the web's usual mess is in on purpose (see `MESS`).

Written (deterministic; rerun after editing content or this script):

    release-1/sample-0000{0..3}.warc.gz   release 1, one partition per file
    release-2/sample-00004.warc.gz        release 2 (about a fifth the size of release 1)
    owi/2026-11-0{1,2}/TOWI-*.parquet     part of the same pages as Open
                                          Web Index metadata (needs pyarrow)
    damaged/damaged.warc.gz               one record of every kind of damage
    MANIFEST.json                         what was written, with counts

    python3 pipelines/sample/generate.py            # stdlib only, plus pyarrow for owi/
    python3 pipelines/sample/check_content.py       # the content files' own checks
"""

import gzip
import hashlib
import json
import random
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENT = HERE / "content"
SEED = 2026

LANGUAGES = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "tr",
             "ru", "uk", "ar", "zh", "ja", "hi", "th"]
# The URL path segment a site uses for a language (some sites use regions).
REGIONAL = {"en": "en-gb", "de": "de-de", "fr": "fr-fr", "es": "es-es",
            "pt": "pt-br", "zh": "zh-cn", "ar": "ar-ae", "ja": "ja-jp"}

BRANDS = [
    "Velo Lumen", "Casa Brava", "Nordlicht Optik", "Blue Harbor Dental",
    "Linden Hof", "Atelier Soleil", "Kaffeerösterei Amsel", "Green Fork Bistro",
    "Pixel Forge", "Alpenblick Hotel", "Bella Vista Tours", "Ocean Pearl Spa",
    "Zeitwerk Uhren", "Maple Leaf Books", "Sunrise Yoga", "Iron Peak Gym",
    "Papier & Co", "Lingua Viva School", "Tierarzt Grünwald", "Citrus Garden",
    "Nova Bikes", "Museo Aurora", "Happy Paws Hotel", "Stadtwerk Mobil",
    "Rocket Print", "Kilim House", "Sakura Sushi Bar", "Golden Loaf Bakery",
    "Harbor Kayak", "Vita Apotheke", "Cloudnest Hosting", "Moto Rápido",
    "Terra Keramik", "Silver Screen Kino", "Pine Valley Camping", "Dr. Leon Physio",
    "Brightwave Solar", "Old Town Hostel", "Fjord Fishing", "Aroma Tea House",
    # release 2
    "Polar Star Travel", "Urban Roots Nursery", "Falcon Drone Academy", "Mira Jewels",
    "Quiet Corner Library Cafe", "Volt Car Rental",
]
RELEASE_1_SITES = 40

# How many languages a site has: weights for 1..8.
LANGUAGE_COUNT_WEIGHTS = [6, 14, 16, 14, 10, 8, 6, 4]

MESS = {
    # JSON-LD split over two blocks, the second one cut off mid-document
    # (invalid JSON beyond repair): its questions are lost, the first
    # block's kept, and the page is in extract's `rejected`.
    "invalid_json_ld": "Casa Brava",
    # All locales declare <html lang="de"> (the site's template language).
    "wrong_lang_attribute": "Zeitwerk Uhren",
    # Locale pages whose visible text is translated but whose JSON-LD is the
    # English FAQ (dedup keeps one copy; langid says English).
    "english_markup": "Pixel Forge",
    # A reseller republishes another site's English FAQ word for word.
    "copied_from": ("Citrus Garden", "Velo Lumen"),
    # Q:/A: prefixes, numbering, quotes and emojis that clean strips.
    "decorated": "Happy Paws Hotel",
    # A page served in windows-1251 without declaring it (detection).
    "undeclared_charset": "Kilim House",
    # A page in windows-1252 declared only in <meta charset="iso-8859-1">.
    "meta_charset": "Terra Keramik",
}


def load_content():
    content = {}
    for lang in LANGUAGES:
        path = CONTENT / f"{lang}.json"
        if not path.exists():
            sys.exit(f"missing {path}: write it (see check_content.py)")
        content[lang] = json.loads(path.read_text(encoding="utf-8"))
    return content


def domain_of(brand):
    slug = "".join(c for c in brand.lower() if c.isalnum() and c.isascii())
    return f"{slug}.example"


def site_facts(rng, brand):
    days = rng.randint(2, 5)
    return {
        "name": brand,
        "open": rng.randint(7, 10),
        "close": rng.randint(17, 20),
        "days": days,
        "days2": days + rng.randint(3, 7),
        "price": rng.randint(3, 9),
        "price2": rng.choice([30, 40, 50, 60, 75, 100]),
        "years": rng.randint(2, 5),
        "count": rng.randint(3, 40),
        "hours": rng.choice([12, 24, 48, 72]),
        "email": f"info@{domain_of(brand)}",
        "minutes": rng.randint(2, 12),
        "percent": rng.choice([10, 15, 20, 25, 30]),
        "age": rng.randint(3, 6),
        "year": rng.randint(1985, 2021),
        "points": rng.choice([50, 100, 150, 200]),
    }


def build_sites(content):
    rng = random.Random(SEED)
    intents = list(content["en"]["intents"])
    sites = []
    for i, brand in enumerate(BRANDS):
        count = rng.choices(range(1, 9), LANGUAGE_COUNT_WEIGHTS)[0]
        home = LANGUAGES[i % len(LANGUAGES)]
        others = [lang for lang in LANGUAGES if lang != home]
        langs = [home] + rng.sample(others, count - 1)
        chosen = rng.sample(intents, rng.randint(10, 18))
        sites.append({
            "brand": brand,
            "domain": domain_of(brand),
            "release": 1 if i < RELEASE_1_SITES else 2,
            "languages": langs,
            "markup": rng.choices(["json-ld", "microdata", "rdfa"], [6, 3, 2])[0],
            "graph": rng.random() < 0.2,
            "regional_paths": rng.random() < 0.3,
            "intents": [k for k in intents if k in chosen],
            "facts": site_facts(rng, brand),
            "about_page": rng.random() < 0.5,
        })
    # Release 2 also adds a language to some release-1 sites (those origins
    # are "touched": align redoes them, and only them).
    for site in sites[:RELEASE_1_SITES:7]:
        missing = [lang for lang in LANGUAGES if lang not in site["languages"]]
        site["release_2_languages"] = [rng.choice(missing)]
    by_brand = {s["brand"]: s for s in sites}
    copier, original = MESS["copied_from"]
    by_brand[copier]["copy_of"] = original
    by_brand[MESS["english_markup"]]["languages"] = ["en", "fr", "de", "es"]
    by_brand[MESS["invalid_json_ld"]]["markup"] = "json-ld"
    by_brand[MESS["english_markup"]]["markup"] = "json-ld"
    return sites


def fill(template, facts):
    return template.format(**facts)


def qa_pairs(site, lang, content):
    facts = site["facts"]
    texts = content[lang]["intents"]
    return [(fill(texts[k]["q"], facts), fill(texts[k]["a"], facts)) for k in site["intents"]]


def decorate(pairs):
    """The decorations clean strips: prefixes, numbering, quotes, emojis."""
    out = []
    for i, (q, a) in enumerate(pairs):
        if i % 3 == 0:
            q, a = f"Q: {q}", f"A: {a}"
        elif i % 3 == 1:
            q = f"{i + 1}. \u201c{q}\u201d"
        else:
            q = f"\U0001F43E {q}"
        out.append((q, a))
    return out


def esc(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def faq_json_ld(pairs, graph, url):
    entity = {
        "@type": "FAQPage",
        "mainEntity": [
            {"@type": "Question", "name": q,
             "acceptedAnswer": {"@type": "Answer", "text": a}}
            for q, a in pairs
        ],
    }
    if graph:
        doc = {"@context": "https://schema.org", "@graph": [
            {"@type": "WebPage", "@id": url, "url": url},
            dict(entity, **{"@id": url + "#faq"}),
        ]}
    else:
        doc = dict({"@context": "https://schema.org"}, **entity)
    return json.dumps(doc, ensure_ascii=False, indent=1)


def script(doc):
    return f'<script type="application/ld+json">\n{doc}\n</script>'


def faq_body(site, pairs, markup):
    """Visible FAQ HTML, carrying microdata or RDFa when asked."""
    parts = []
    if markup == "microdata":
        parts.append('<div itemscope itemtype="https://schema.org/FAQPage">')
        for q, a in pairs:
            parts.append(
                '<div itemscope itemprop="mainEntity" itemtype="https://schema.org/Question">'
                f'<h3 itemprop="name">{esc(q)}</h3>'
                '<div itemscope itemprop="acceptedAnswer" itemtype="https://schema.org/Answer">'
                f'<div itemprop="text"><p>{esc(a)}</p></div></div></div>')
        parts.append("</div>")
    elif markup == "rdfa":
        parts.append('<div vocab="https://schema.org/" typeof="FAQPage">')
        for q, a in pairs:
            parts.append(
                '<section property="mainEntity" typeof="Question">'
                f'<h3 property="name">{esc(q)}</h3>'
                '<div property="acceptedAnswer" typeof="Answer">'
                f'<div property="text">{esc(a)}</div></div></section>')
        parts.append("</div>")
    else:
        parts.append('<div class="faq">')
        for q, a in pairs:
            parts.append(f'<details><summary>{esc(q)}</summary><p>{esc(a)}</p></details>')
        parts.append("</div>")
    return "\n".join(parts)


def page_html(site, lang, content, url, head_extra="", charset_meta="utf-8"):
    chrome = content[lang]["chrome"]
    pairs = qa_pairs(site, lang, content)
    brand = site["brand"]
    if brand == MESS["decorated"]:
        pairs = decorate(pairs)
    markup_pairs = pairs
    if brand == MESS["english_markup"]:
        markup_pairs = qa_pairs(site, "en", content)
    declared = "de" if brand == MESS["wrong_lang_attribute"] else lang
    blocks = []
    if site["markup"] == "json-ld":
        if brand == MESS["invalid_json_ld"]:
            half = max(1, len(markup_pairs) // 2)
            blocks.append(script(faq_json_ld(markup_pairs[:half], False, url)))
            broken = faq_json_ld(markup_pairs[half:], False, url)
            blocks.append(script(broken[: len(broken) * 2 // 3]))
        else:
            blocks.append(script(faq_json_ld(markup_pairs, site["graph"], url)))
        # A second, unrelated block, as most CMSs add.
        blocks.append(script(json.dumps({
            "@context": "https://schema.org", "@type": "Organization",
            "name": brand, "url": f"https://{site['domain']}/"}, ensure_ascii=False)))
    title = f"{chrome['faq_title']} | {brand}"
    dir_attr = ' dir="rtl"' if lang == "ar" else ""
    return f"""<!DOCTYPE html>
<html lang="{declared}"{dir_attr}>
<head>
<meta charset="{charset_meta}">
<title>{esc(title)}</title>
<meta name="description" content="{esc(chrome['faq_intro'])}">
{head_extra}{chr(10).join(blocks)}
</head>
<body>
<nav><a href="/">{esc(chrome['home'])}</a> · <a href="mailto:{site['facts']['email']}">{esc(chrome['contact'])}</a></nav>
<main>
<h1>{esc(chrome['faq_title'])}</h1>
<p>{esc(chrome['faq_intro'])}</p>
{faq_body(site, pairs, site['markup'] if site['markup'] != 'json-ld' else 'plain')}
</main>
<footer>© {site['facts']['year']}–2026 {esc(brand)}</footer>
</body>
</html>
"""


def about_html(site, lang, content):
    chrome = content[lang]["chrome"]
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{esc(chrome['about_title'])} | {esc(site['brand'])}</title></head>
<body><h1>{esc(chrome['about_title'])}</h1><p>{esc(chrome['about_text'])}</p></body>
</html>
"""


def lang_path(site, lang):
    return REGIONAL.get(lang, lang) if site["regional_paths"] else lang


# ---------------------------------------------------------------- WARC ---

def record_id(*parts):
    h = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return f"<urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}>"


def warc_record(kind, headers, block):
    lines = [b"WARC/1.1"]
    for k, v in headers:
        lines.append(f"{k}: {v}".encode())
    lines.append(f"Content-Length: {len(block)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + block + b"\r\n\r\n"


def http_block(body, content_type, status="200 OK", extra=()):
    head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    head += list(extra)
    if not any(h.lower().startswith("transfer-encoding") for h in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(body, size=700):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def member(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


class WarcWriter:
    def __init__(self, path, date):
        self.path = path
        self.date = date
        self.members = []
        self.responses = 0
        self.info({"software": "dflow pipelines/sample/generate.py",
                   "description": "dflow sample web (fictional sites written for dflow)"})

    def info(self, fields):
        block = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        self.members.append(member(warc_record("warcinfo", [
            ("WARC-Type", "warcinfo"),
            ("WARC-Date", self.date),
            ("WARC-Record-ID", record_id(str(self.path.name), "info")),
            ("Content-Type", "application/warc-fields"),
        ], block)))

    def response(self, url, block, raw=False):
        rec = warc_record("response", [
            ("WARC-Type", "response"),
            ("WARC-Date", self.date),
            ("WARC-Record-ID", record_id(url, self.date)),
            ("WARC-Target-URI", url),
            ("Content-Type", "application/http; msgtype=response"),
        ], block)
        self.members.append(rec if raw else member(rec))
        self.responses += 1

    def request(self, url):
        host, path = url.split("/", 3)[2:]
        block = f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.members.append(member(warc_record("request", [
            ("WARC-Type", "request"),
            ("WARC-Date", self.date),
            ("WARC-Record-ID", record_id(url, self.date, "request")),
            ("WARC-Target-URI", url),
            ("Content-Type", "application/http; msgtype=request"),
        ], block)))

    def close(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"".join(self.members))


def write_page(w, site, lang, content, stats):
    url = f"https://{site['domain']}/{lang_path(site, lang)}/faq"
    brand = site["brand"]
    if brand == MESS["undeclared_charset"] and lang in ("ru", "uk"):
        html = page_html(site, lang, content, url).replace('<meta charset="utf-8">\n', "")
        body = html.encode("cp1251", errors="replace")
        block = http_block(body, "text/html")
    elif brand == MESS["meta_charset"] and lang in ("fr", "de", "es", "it", "pt", "nl", "en"):
        # Declared as ISO-8859-1, written as windows-1252 (as WHATWG reads that label).
        body = page_html(site, lang, content, url, charset_meta="iso-8859-1").encode(
            "cp1252", errors="replace")
        block = http_block(body, "text/html")
    else:
        body = page_html(site, lang, content, url).encode()
        n = stats["pages"]
        if n % 5 == 1:
            block = http_block(gzip.compress(body, mtime=0), "text/html; charset=utf-8",
                               extra=("Content-Encoding: gzip",))
        elif n % 5 == 2:
            block = http_block(chunked(body), "text/html; charset=UTF-8",
                               extra=("Transfer-Encoding: chunked",))
        elif n % 5 == 3:
            raw = zlib.compress(body, 9)
            block = http_block(raw, "text/html; charset=utf-8", extra=("Content-Encoding: deflate",))
        else:
            block = http_block(body, "text/html; charset=utf-8")
    if stats["pages"] % 4 == 0:
        w.request(url)
    w.response(url, block)
    stats["pages"] += 1
    stats["qa"][lang] = stats["qa"].get(lang, 0) + len(site["intents"])


def write_copy(w, site, original, content, stats):
    """The reseller page: the original's English FAQ under another origin."""
    url = f"https://{site['domain']}/en/faq-partner"
    html = page_html(original, "en", content, url)
    w.response(url, http_block(html.encode(), "text/html; charset=utf-8"))
    stats["pages"] += 1


def write_site(w, site, langs, content, stats):
    for lang in langs:
        write_page(w, site, lang, content, stats)
        if site["about_page"]:
            url = f"https://{site['domain']}/{lang_path(site, lang)}/about"
            w.response(url, http_block(about_html(site, lang, content).encode(),
                                       "text/html; charset=utf-8"))


def extras(w, site):
    """Records every crawl has: a redirect, a 404, an image, a PDF."""
    d = site["domain"]
    w.response(f"https://{d}/faq", http_block(b"", "text/html", "301 Moved Permanently",
                                               (f"Location: https://{d}/en/faq",)))
    w.response(f"https://{d}/old-faq", http_block(b"<html><body>Not found</body></html>",
                                                   "text/html", "404 Not Found"))
    png = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(d.encode()).digest() * 8
    w.response(f"https://{d}/logo.png", http_block(png, "image/png"))
    w.response(f"https://{d}/price-list.pdf",
               http_block(b"%PDF-1.4\n% dflow sample\n%%EOF\n", "application/pdf"))


def truncated_tail(w, site, content):
    """A record cut off mid-body: the crawl's last member is incomplete."""
    url = f"https://{site['domain']}/en/faq-draft"
    html = page_html(site, "en", content, url).encode()
    rec = member(warc_record("response", [
        ("WARC-Type", "response"), ("WARC-Date", w.date),
        ("WARC-Record-ID", record_id(url, "cut")), ("WARC-Target-URI", url),
        ("Content-Type", "application/http; msgtype=response"),
    ], http_block(html, "text/html; charset=utf-8")))
    w.members.append(rec[: len(rec) * 2 // 3])


def write_releases(sites, content):
    by_brand = {s["brand"]: s for s in sites}
    manifest = {"releases": {}}
    release_1 = [s for s in sites if s["release"] == 1]
    files = 4
    for f in range(files):
        path = HERE / "release-1" / f"sample-{f:05d}.warc.gz"
        w = WarcWriter(path, f"2026-11-01T0{f}:00:00Z")
        stats = {"pages": 0, "qa": {}}
        for site in release_1[f::files]:
            if "copy_of" in site:
                write_copy(w, site, by_brand[site["copy_of"]], content, stats)
            write_site(w, site, site["languages"], content, stats)
            if stats["pages"] % 3 == 0:
                extras(w, site)
        if f == files - 1:
            truncated_tail(w, release_1[-1], content)
        w.close()
        manifest["releases"].setdefault("release-1", {})[path.name] = stats
    path = HERE / "release-2" / "sample-00004.warc.gz"
    w = WarcWriter(path, "2026-11-02T00:00:00Z")
    stats = {"pages": 0, "qa": {}}
    for site in sites:
        if site["release"] == 2:
            write_site(w, site, site["languages"], content, stats)
        elif "release_2_languages" in site:
            write_site(w, site, site["release_2_languages"], content, stats)
    extras(w, sites[-1])
    w.close()
    manifest["releases"]["release-2"] = {path.name: stats}
    return manifest


# ---------------------------------------------------------------- OWI ---

ISO3 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por",
        "nl": "nld", "pl": "pol", "tr": "tur", "ru": "rus", "uk": "ukr", "ar": "ara",
        "zh": "zho", "ja": "jpn", "hi": "hin", "th": "tha"}


def write_owi(sites, content):
    """Part of the sample as OWI metadata Parquet (one file per day and
    language, as OWI shards them), with the `faq` column filled."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow not installed: owi/ left as it is (pip install pyarrow)")
        return {}
    faq_type = pa.list_(pa.struct([("question", pa.string()), ("answer", pa.string()),
                                   ("language", pa.string())]))
    schema = pa.schema([
        ("id", pa.string()), ("record_id", pa.string()), ("url", pa.string()),
        ("url_scheme", pa.string()), ("url_subdomain", pa.string()),
        ("url_domain", pa.string()), ("url_suffix", pa.string()), ("url_path", pa.string()),
        ("title", pa.string()), ("description", pa.string()), ("keywords", pa.string()),
        ("author", pa.string()), ("warc_date", pa.timestamp("ms", tz="UTC")),
        ("plain_text", pa.string()), ("language", pa.string()),
        ("json-ld", pa.list_(pa.string())), ("microdata", pa.list_(pa.string())),
        ("faq", faq_type),
    ])
    import datetime as dt
    days = {1: "2026-11-01", 2: "2026-11-02"}
    rows = {}
    for site in sites[::3]:
        for lang in site["languages"]:
            day = site["release"]
            url = f"https://{site['domain']}/{lang_path(site, lang)}/faq"
            pairs = qa_pairs(site, lang, content)
            chrome = content[lang]["chrome"]
            rows.setdefault((day, lang), []).append({
                "id": hashlib.sha256(url.encode()).hexdigest(),
                "record_id": record_id(url, days[day]),
                "url": url, "url_scheme": "https", "url_subdomain": "",
                "url_domain": site["domain"].split(".")[0], "url_suffix": "example",
                "url_path": f"/{lang_path(site, lang)}/faq",
                "title": f"{chrome['faq_title']} | {site['brand']}",
                "description": chrome["faq_intro"], "keywords": f"faq, {site['brand']}",
                "author": None,
                "warc_date": dt.datetime.fromisoformat(days[day] + "T00:00:00+00:00"),
                "plain_text": " ".join(f"{q} {a}" for q, a in pairs),
                "language": ISO3[lang],
                "json-ld": [faq_json_ld(pairs, False, url)], "microdata": [],
                # OWI's own per-item language is unreliable; here it is the
                # page's declared language, which langid overrides.
                "faq": [{"question": q, "answer": a, "language": lang} for q, a in pairs],
            })
    written = {}
    for (day, lang), items in sorted(rows.items()):
        name = f"TOWI-{days[day]}-dc1-{ISO3[lang]}-faq.parquet"
        path = HERE / "owi" / days[day] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(items, schema=schema)
        pq.write_table(table, path, compression="zstd")
        written[f"{days[day]}/{name}"] = len(items)
    return written


# ------------------------------------------------------------ damaged ---

def write_damaged(sites, content):
    """One WARC with every kind of damage, between good records."""
    path = HERE / "damaged" / "damaged.warc.gz"
    w = WarcWriter(path, "2026-11-03T00:00:00Z")
    site = sites[0]
    good = lambda i: page_html(site, ["en", "de", "fr", "es"][i % 4], content,
                               f"https://{site['domain']}/good-{i}").encode()
    w.response(f"https://{site['domain']}/good-0", http_block(good(0), "text/html; charset=utf-8"))
    # Garbage between records.
    w.members.append(b"this is not a WARC record\r\n" * 20)
    w.response(f"https://{site['domain']}/good-1", http_block(good(1), "text/html; charset=utf-8"))
    # A 50 MB page (cut at the reader's max_record_bytes).
    big = b"<html><body>" + b"<p>" + b"lorem ipsum dolor sit amet " * 1_900_000 + b"</p></body></html>"
    w.response(f"https://{site['domain']}/huge", http_block(big, "text/html"))
    # A page in an undeclared charset (Shift_JIS, no header or meta).
    sj = page_html(sites[13], "ja", content, "https://x/").replace('<meta charset="utf-8">\n', "")
    w.response(f"https://{site['domain']}/sjis", http_block(sj.encode("shift_jis", "replace"), "text/html"))
    # Binary content typed as HTML.
    w.response(f"https://{site['domain']}/binary", http_block(bytes(range(256)) * 40, "text/html"))
    # A WARC header that is not a WARC header, then a wrong Content-Length.
    w.members.append(member(b"WARC/1.1\r\nWARC-Type response\r\nbroken header line\r\n\r\n"))
    rec = warc_record("response", [("WARC-Type", "response"), ("WARC-Date", w.date),
                                   ("WARC-Record-ID", record_id("bad-length")),
                                   ("WARC-Target-URI", f"https://{site['domain']}/bad-length")],
                      http_block(good(2), "text/html"))
    w.members.append(member(rec.replace(b"Content-Length: ", b"Content-Length: 9", 1)))
    w.response(f"https://{site['domain']}/good-3", http_block(good(3), "text/html; charset=utf-8"))
    # A truncated gzip member at the end.
    cut = member(warc_record("response", [("WARC-Type", "response"), ("WARC-Date", w.date),
                                          ("WARC-Record-ID", record_id("cut-end")),
                                          ("WARC-Target-URI", f"https://{site['domain']}/cut")],
                             http_block(good(0), "text/html")))
    w.members.append(cut[: len(cut) // 2])
    w.close()
    return {"good_pages": 4, "path": "damaged/damaged.warc.gz"}


def main():
    content = load_content()
    sites = build_sites(content)
    manifest = write_releases(sites, content)
    manifest["owi"] = write_owi(sites, content)
    manifest["damaged"] = write_damaged(sites, content)
    manifest["sites"] = [
        {k: s[k] for k in ("brand", "domain", "release", "languages", "markup", "intents")}
        | ({"release_2_languages": s["release_2_languages"]} if "release_2_languages" in s else {})
        for s in sites
    ]
    totals = {}
    for files in manifest["releases"].values():
        for stats in files.values():
            for lang, n in stats["qa"].items():
                totals[lang] = totals.get(lang, 0) + n
    manifest["qa_pairs_per_language"] = dict(sorted(totals.items()))
    manifest["qa_pairs"] = sum(totals.values())
    (HERE / "MANIFEST.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(sites)} sites, {manifest['qa_pairs']} QA pairs in pages, "
          f"{len(totals)} languages; OWI files: {len(manifest['owi'])}")


if __name__ == "__main__":
    main()
