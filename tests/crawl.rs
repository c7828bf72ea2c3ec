//! `op: crawl` against a real HTTP server on 127.0.0.1, started by the test:
//! pages served from fixtures (one gzip-encoded, one chunked), a robots.txt
//! that disallows a path (never requested: the server's log says so), a
//! slow endpoint (timed out), an oversized body (cut), a redirect loop
//! (stopped), a 503 then 200 (retried); the default configuration refuses
//! 127.0.0.1; a crawl killed midway resumes without fetching again what it
//! has.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Project, bin};

/// One request the server saw.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    path: String,
    user_agent: String,
}

#[derive(Default)]
struct State {
    hits: Mutex<Vec<Hit>>,
    flaky: AtomicUsize,
    /// Pages `/p/0` .. `/p/{n-1}` linked from `/many`.
    many: usize,
    /// Pages served as they are: `host/path` (the Host header without its
    /// port) → (content type, body).
    files: BTreeMap<String, (String, Vec<u8>)>,
}

struct Server {
    port: u16,
    state: Arc<State>,
}

impl Server {
    fn start(many: usize) -> Self {
        Self::with_files(many, BTreeMap::new())
    }

    fn with_files(many: usize, files: BTreeMap<String, (String, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            many,
            files,
            ..State::default()
        });
        let st = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = st.clone();
                thread::spawn(move || serve(stream, &st, port));
            }
        });
        Server { port, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("lock").clone()
    }

    fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }
}

fn faq_page(title: &str, links: &[String]) -> String {
    let anchors: String = links
        .iter()
        .map(|l| format!("<a href=\"{l}\">{l}</a>\n"))
        .collect();
    format!(
        r#"<!doctype html><html lang="en"><head><title>{title}</title>
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"FAQPage","mainEntity":[
{{"@type":"Question","name":"How long does delivery to {title} take?","acceptedAnswer":{{"@type":"Answer","text":"Delivery to {title} takes three to five working days from the day the order is placed."}}}},
{{"@type":"Question","name":"Can I return an item bought at {title}?","acceptedAnswer":{{"@type":"Answer","text":"Yes, every item bought at {title} can be returned within thirty days for a full refund."}}}}]}}</script>
</head><body><h1>{title}</h1>{anchors}</body></html>"#
    )
}

fn serve(mut s: TcpStream, st: &State, port: u16) {
    let Some(head) = dflow_engine::testing::read_request_head(&mut s) else {
        return;
    };
    let path = head.path.clone();
    let user_agent = head.header("user-agent").unwrap_or_default().to_string();
    let host = head
        .header("host")
        .map(|v| v.rsplit_once(':').map_or(v, |(h, _)| h).to_string())
        .unwrap_or_default();
    let file_key = format!("{host}{path}");
    st.hits.lock().expect("lock").push(Hit {
        at: Instant::now(),
        path: path.clone(),
        user_agent,
    });
    let html = "text/html; charset=utf-8";
    let (status, headers, body): (&str, Vec<(&str, String)>, Vec<u8>) = match path.as_str() {
        "/robots.txt" => (
            "200 OK",
            vec![("Content-Type", "text/plain".into())],
            b"User-agent: *\nDisallow: /private/\n".to_vec(),
        ),
        "/index.html" => {
            let links: Vec<String> = [
                "/a.html",
                "/gz.html",
                "/chunked.html",
                "/private/secret.html",
                "/slow",
                "/big",
                "/loop1",
                "/flaky",
                "/a.html#again",
                "https://elsewhere.example/x",
                "/logo.png",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            (
                "200 OK",
                vec![("Content-Type", html.into())],
                faq_page("Index", &links).into_bytes(),
            )
        }
        "/a.html" | "/flaky-ok" => (
            "200 OK",
            vec![("Content-Type", html.into())],
            faq_page("Alpha", &["/deeper.html".to_string()]).into_bytes(),
        ),
        "/gz.html" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(faq_page("Gzip", &[]).as_bytes())
                .expect("gzip");
            (
                "200 OK",
                vec![
                    ("Content-Type", html.into()),
                    ("Content-Encoding", "gzip".into()),
                ],
                gz.finish().expect("gzip"),
            )
        }
        "/chunked.html" => {
            let page = faq_page("Chunked", &[]);
            let mut body = Vec::new();
            for part in page.as_bytes().chunks(100) {
                body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                body.extend_from_slice(part);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {html}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            return;
        }
        "/private/secret.html" => ("200 OK", vec![], b"secret".to_vec()),
        "/slow" => {
            thread::sleep(Duration::from_secs(3));
            (
                "200 OK",
                vec![("Content-Type", html.into())],
                b"late".to_vec(),
            )
        }
        "/big" => {
            let mut page = faq_page("Big", &[]).into_bytes();
            page.truncate(page.len() - "</body></html>".len());
            page.extend(std::iter::repeat_n(b'x', 3 << 20));
            page.extend_from_slice(b"</body></html>");
            ("200 OK", vec![("Content-Type", html.into())], page)
        }
        "/loop1" => ("302 Found", vec![("Location", "/loop2".into())], Vec::new()),
        "/loop2" => (
            "302 Found",
            vec![("Location", format!("http://127.0.0.1:{port}/loop1"))],
            Vec::new(),
        ),
        "/flaky" => {
            if st.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                (
                    "503 Service Unavailable",
                    vec![("Retry-After", "0".into())],
                    b"busy".to_vec(),
                )
            } else {
                (
                    "200 OK",
                    vec![("Content-Type", html.into())],
                    faq_page("Flaky", &[]).into_bytes(),
                )
            }
        }
        "/many" => {
            let links: Vec<String> = (0..st.many).map(|i| format!("/p/{i}")).collect();
            (
                "200 OK",
                vec![("Content-Type", html.into())],
                faq_page("Many", &links).into_bytes(),
            )
        }
        _ if st.files.contains_key(&file_key) => {
            let (ct, body) = &st.files[&file_key];
            ("200 OK", vec![("Content-Type", ct.clone())], body.clone())
        }
        p if p.starts_with("/p/") => (
            "200 OK",
            vec![("Content-Type", html.into())],
            faq_page(&format!("Page {}", &p[3..]), &[]).into_bytes(),
        ),
        _ => ("404 Not Found", vec![], b"no".to_vec()),
    };
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(&body);
}

fn pipeline(params: &str) -> String {
    format!(
        r#"version: 1
name: crawl
nodes:
  seeds: {{ op: csv, params: {{ paths: ["seeds.csv"] }} }}
  web:
    op: crawl
    inputs: {{ seeds: seeds }}
    params: {{ {params} }}
  faqs: {{ op: extract, inputs: {{ pages: web }} }}
"#
    )
}

fn by_url(rows: Vec<String>) -> BTreeMap<String, String> {
    rows.into_iter()
        .filter_map(|r| {
            r.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

#[test]
fn crawls_politely_and_records_every_outcome() {
    let server = Server::start(0);
    let p = Project::new("empty");
    p.write(
        "seeds.csv",
        &format!("url\n{}\nnot a url\n", server.url("/index.html")),
    );
    p.write(
        "pipeline.yaml",
        &pipeline(
            "allow_private: true, follow: same_host, max_depth: 1, delay_ms: 40, timeout_ms: 700, retries: 1, backoff_ms: 50, max_body_bytes: 1048576, warc_file_bytes: 4000, user_agent: 'dflow-test/1.0 (+mailto:test@example.org)'",
        ),
    );
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    // WARC files roll at 4 KB; each is a partition of the pages, so the
    // per-partition nodes after the crawl work on them side by side.
    let partitions = log.computed()["faqs"].len();
    assert!(partitions >= 2, "{partitions} partitions");

    let hits = server.hits();
    let paths = server.paths();
    // robots.txt first, once; the disallowed path never requested; the
    // image and the other host never requested; the fragment link is the
    // same page as /a.html; links of depth-1 pages not followed.
    assert_eq!(paths[0], "/robots.txt");
    assert_eq!(paths.iter().filter(|p| *p == "/robots.txt").count(), 1);
    assert!(
        !paths.iter().any(|p| p.starts_with("/private")),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p == "/logo.png" || p == "/deeper.html"),
        "{paths:?}"
    );
    assert_eq!(paths.iter().filter(|p| *p == "/a.html").count(), 1);
    assert!(
        hits.iter()
            .all(|h| h.user_agent == "dflow-test/1.0 (+mailto:test@example.org)")
    );
    // Politeness: one request at a time to the host, 40 ms apart at least.
    for w in hits.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(
            gap >= Duration::from_millis(39),
            "{} then {} after {gap:?}",
            w[0].path,
            w[1].path
        );
    }
    // The slow endpoint was tried twice (one retry), the flaky one answered
    // 503 then 200.
    assert_eq!(paths.iter().filter(|p| *p == "/slow").count(), 2);
    assert_eq!(paths.iter().filter(|p| *p == "/flaky").count(), 2);
    // The loop: /loop1 → /loop2 → /loop1 stopped after one round.
    assert_eq!(paths.iter().filter(|p| p.starts_with("/loop")).count(), 2);

    let fetches = by_url(p.sql_rows(
        "SELECT regexp_replace(url, '^http://[^/]+', '') || ' ' || kind || ':' || COALESCE(CAST(http_status AS VARCHAR), '-') || ':' || CAST(attempts AS VARCHAR) || ':' || CAST(truncated AS VARCHAR) FROM web__fetches",
    ));
    assert_eq!(fetches["/robots.txt"], "robots:200:1:false");
    assert_eq!(fetches["/index.html"], "page:200:1:false");
    assert_eq!(fetches["/flaky"], "page:200:2:false");
    assert_eq!(fetches["/big"], "page:200:1:true");
    assert_eq!(fetches["/slow"], "page:-:2:false");
    assert_eq!(fetches["/loop1"], "page:302:1:false");

    let rejected = by_url(p.sql_rows(
        "SELECT regexp_replace(url, '^http://[^/]+', '') || ' ' || reason FROM web__rejected",
    ));
    assert_eq!(rejected["/private/secret.html"], "disallowed by robots.txt");
    assert!(rejected["/slow"].starts_with("timed out"), "{rejected:?}");
    assert!(
        rejected["/loop1"].starts_with("redirect loop:"),
        "{rejected:?}"
    );
    assert!(rejected["not"].contains("not a URL"), "{rejected:?}");
    assert_eq!(rejected.len(), 4, "{rejected:?}");

    // Pages: read back from the crawl's own WARC files (gzip and chunked
    // bodies decoded, the big one cut at 1 MiB), and their FAQs extracted.
    let pages = p.sql_rows(
        "SELECT regexp_replace(url, '^http://[^/]+', '') FROM web WHERE http_status = 200 ORDER BY url",
    );
    assert_eq!(
        pages,
        [
            "/a.html",
            "/big",
            "/chunked.html",
            "/flaky",
            "/gz.html",
            "/index.html"
        ]
    );
    assert_eq!(
        p.sql_count("SELECT count(*) FROM web WHERE url LIKE '%/big' AND length(html) <= 1048576 AND length(html) > 1000000"),
        1
    );
    let faqs = p.sql_rows(
        "SELECT regexp_replace(url, '^http://[^/]+', '') || ' ' || CAST(count(*) AS VARCHAR) AS x FROM faqs GROUP BY url ORDER BY x",
    );
    assert_eq!(
        faqs,
        [
            "/a.html 2",
            "/big 2",
            "/chunked.html 2",
            "/flaky 2",
            "/gz.html 2",
            "/index.html 2"
        ]
    );

    // The WARC files are in the node's artifact, readable by `op: warc`.
    let warcs = find_files(&p.path(".dflow"), "crawl-00000.warc.gz");
    assert_eq!(warcs.len(), 1, "{warcs:?}");
    p.write(
        "reread.yaml",
        &format!(
            "version: 1\nname: reread\nnodes:\n  pages: {{ op: warc, params: {{ paths: [\"{}\"] }} }}\n",
            warcs[0].display()
        ),
    );
    let out = p.dflow(&["run", "reread.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second run is answered from the cache: no request at all.
    let before = server.hits().len();
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(server.hits().len(), before);
}

fn find_files(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(find_files(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_default_configuration_refuses_loopback_addresses() {
    let server = Server::start(0);
    let p = Project::new("empty");
    p.write(
        "seeds.csv",
        &format!(
            "url\n{}\nhttp://localhost:{}/index.html\n",
            server.url("/index.html"),
            server.port
        ),
    );
    p.write("pipeline.yaml", &pipeline("delay_ms: 0"));
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(server.hits().is_empty(), "{:?}", server.paths());
    let reasons = p.sql_rows("SELECT reason FROM web__rejected ORDER BY url");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("refused: 127.0.0.1 is a loopback address"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("refused: localhost resolves to"),
        "{reasons:?}"
    );
    assert!(reasons.iter().all(|r| r.contains("allow_private: true")));
    assert_eq!(p.sql_count("SELECT count(*) FROM web"), 0);

    // A seed past `max_pages` is not fetched, and says so.
    p.edit("delay_ms: 0", "delay_ms: 0, max_pages: 1");
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let reasons = p.sql_rows("SELECT reason FROM web__rejected ORDER BY url");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[1], "not fetched: max_pages (1) reached");
}

#[test]
fn an_interrupted_crawl_resumes_without_fetching_again() {
    let n = 30;
    let server = Server::start(n);
    let p = Project::new("empty");
    p.write("seeds.csv", &format!("url\n{}\n", server.url("/many")));
    p.write(
        "pipeline.yaml",
        &pipeline("allow_private: true, follow: same_host, delay_ms: 60"),
    );
    let mut child = std::process::Command::new(bin())
        .args(["run", "pipeline.yaml"])
        .current_dir(p.path("."))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dflow");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.hits().len() < 12 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let first = server.hits().len();
    assert!(
        (12..n + 2).contains(&first),
        "{first} requests before the kill"
    );

    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let paths = server.paths();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &paths {
        *counts.entry(path.as_str()).or_default() += 1;
    }
    // Everything fetched once; at most the one request in flight at the
    // kill (not yet journalled) was made again.
    let again: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(again.len() <= 1, "fetched again: {again:?}");
    assert_eq!(counts.len(), n + 2, "{counts:?}");
    assert_eq!(
        p.sql_count("SELECT count(*) FROM web WHERE http_status = 200"),
        n as u64 + 1
    );
    assert_eq!(
        p.sql_count("SELECT count(*) FROM web__fetches"),
        n as u64 + 2
    );
}

/// `pipelines/webfaq2-crawl.yaml`, every node, with its seeds pointed at a
/// local server that serves the bundled sample's release-1 pages under
/// their own host names (resolved to 127.0.0.1 by `resolve`), each FAQ page
/// declaring its translations with hreflang links, private addresses
/// allowed, no politeness delay, and the tiny BERT for e5: seeded with one
/// FAQ page per site, the crawl finds the other locales, and its pages flow
/// through extraction, language id, dedup, scoring and alignment to the
/// exported files.
#[test]
fn the_crawl_pipeline_runs_end_to_end_on_a_served_sample() {
    use dflow_op_web::warc::http::parse_response;
    use dflow_op_web::warc::reader::{Item, WarcReader};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = BTreeMap::new();
    let mut release = std::fs::read_dir(root.join("pipelines/sample/release-1"))
        .expect("sample")
        .flatten()
        .map(|e| e.path())
        .collect::<Vec<_>>();
    release.sort();
    for warc in release {
        WarcReader::open(&warc, 64 << 20)
            .expect("open")
            .for_each(|item| {
                let Item::Record(mut r) = item else { return };
                if r.header("WARC-Type") != Some("response") {
                    return;
                }
                let Some(url) = r.header("WARC-Target-URI").map(str::to_string) else {
                    return;
                };
                let Ok(resp) = parse_response(std::mem::take(&mut r.block), 64 << 20) else {
                    return;
                };
                let ct = resp.header("Content-Type").unwrap_or("").to_string();
                if resp.status != 200 || !ct.contains("html") {
                    return;
                }
                let key = url
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                files.insert(key.to_string(), (ct, resp.into_body()));
            })
            .expect("read");
    }
    assert!(files.len() > 200, "{} pages in release 1", files.len());
    // Each site's FAQ pages declare their translations, as multilingual
    // sites do (`<link rel="alternate" hreflang>`, relative hrefs): the
    // seeds are one FAQ page per site plus the pages that are not FAQs,
    // and `follow: hreflang` must find every other locale.
    let mut locales: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in files.keys() {
        let (host, path) = key.split_once('/').expect("host/path");
        if let Some(lang) = path.strip_suffix("/faq") {
            locales
                .entry(host.to_string())
                .or_default()
                .push(lang.to_string());
        }
    }
    for (key, (_, body)) in files.iter_mut() {
        let (host, path) = key.split_once('/').expect("host/path");
        if !path.ends_with("/faq") {
            continue;
        }
        let links: String = locales[host]
            .iter()
            .map(|l| format!("<link rel=\"alternate\" hreflang=\"{l}\" href=\"/{l}/faq\">"))
            .collect();
        let html = String::from_utf8_lossy(body).into_owned();
        let html = match html.find("<head>") {
            Some(i) => format!("{}{links}{}", &html[..i + 6], &html[i + 6..]),
            None => format!("{links}{html}"),
        };
        *body = html.into_bytes();
    }
    let server = Server::with_files(0, files.clone());
    let p = Project::new("empty");
    // Each site keeps its own host (so origins stay apart), resolved to
    // the local server by the crawl's `resolve` param.
    let mut seeded_hosts = std::collections::BTreeSet::new();
    let seeds: String = files
        .keys()
        .filter(|k| {
            let (host, path) = k.split_once('/').expect("host/path");
            !path.ends_with("/faq") || seeded_hosts.insert(host.to_string())
        })
        .map(|k| {
            let (host, path) = k.split_once('/').expect("host/path");
            format!("http://{host}:{}/{path}\n", server.port)
        })
        .collect();
    let seeded = seeds.lines().count();
    assert!(
        seeded < files.len() - 100,
        "{seeded} seeds for {} pages",
        files.len()
    );
    p.write("seeds/faq-pages.csv", &format!("url\n{seeds}"));

    let text =
        std::fs::read_to_string(root.join("pipelines/webfaq2-crawl.yaml")).expect("pipeline");
    let start = text.find("\n  e5:\n").expect("an `e5` node");
    let end = start
        + 1
        + text[start + 1..]
            .find("\n  scored:")
            .expect("end of the e5 node");
    let tiny = root.join("operators/neural/tests/fixtures/tiny-bert");
    let model = format!(
        "\n  e5: {{ op: model, params: {{ source: \"path:{}\" }} }}",
        tiny.display()
    );
    let text = format!("{}{}{}", &text[..start], model, &text[end..]);
    assert!(text.contains("delay_ms: 1000"));
    let text = text
        .replace(
            "delay_ms: 1000",
            "delay_ms: 0\n      allow_private: true\n      resolve: { \"*.example\": 127.0.0.1 }",
        )
        .replace("dimensions: 384", "dimensions: 32");
    p.write("pipeline.yaml", &text);
    let log = p.run(&[]);
    assert_eq!(log.code, 0, "{}", log.stderr);

    let paths = server.paths();
    let robots = paths.iter().filter(|p| *p == "/robots.txt").count() as u64;
    assert_eq!(
        robots,
        p.sql_count("SELECT count(DISTINCT origin) FROM crawl")
    );
    assert!(robots >= 38, "{robots} sites");
    assert_eq!(
        p.sql_count("SELECT count(*) FROM crawl WHERE http_status = 200"),
        files.len() as u64
    );
    // The pages not seeded were found through the seeds' hreflang links.
    assert_eq!(
        p.sql_count("SELECT count(*) FROM crawl__fetches WHERE kind = 'page' AND depth = 1"),
        (files.len() - seeded) as u64
    );
    let pairs = p.sql_count("SELECT count(*) FROM unique");
    assert!(pairs > 1_800, "{pairs} QA pairs crawled");
    assert!(p.sql_count("SELECT count(DISTINCT language) FROM unique") >= 16);
    assert!(p.sql_count("SELECT count(*) FROM bitexts") > 0);
    for f in [
        "out/webfaq2-crawl/data/eng.parquet",
        "out/webfaq2-crawl/bitexts.jsonl",
    ] {
        assert!(p.path(f).exists(), "{f} missing");
    }
    let warcs: Vec<_> = std::fs::read_dir(p.path("out/webfaq2-crawl/warc"))
        .expect("exported WARC files")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".warc.gz"))
        .collect();
    assert_eq!(warcs.len(), 1, "{warcs:?}");
}
