//! Crawler speed and politeness against a local HTTP server started here.
//!
//!     cargo build --workspace --all-targets
//!     target/debug/examples/crawl_bench [PAGES] [HOSTS] [DELAY_MS]
//!
//! 1. Speed: `PAGES` pages (about 12 KB of HTML each, FAQ markup included)
//!    linked from one index page, crawled with no delay (`op: crawl`,
//!    `follow: same_host`, 16 requests in flight), against GNU wget's
//!    recursive crawl of the same pages into a WARC file (`wget -r -l 1
//!    --warc-file`, one connection, the tool a user would pick instead).
//! 2. Politeness: the same pages spread over `HOSTS` host names (all
//!    resolved to 127.0.0.1 by the crawl's `resolve` param) with
//!    `delay_ms: DELAY_MS`: the server's log must show no host asked twice
//!    within its delay, while the hosts are crawled side by side.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Log = Arc<Mutex<Vec<(Instant, String, String)>>>;

fn page(host: &str, i: usize) -> String {
    let mut qa = String::new();
    for k in 0..20 {
        if k > 0 {
            qa.push(',');
        }
        qa.push_str(&format!(
            r#"{{"@type":"Question","name":"Question {k} about page {i} of {host}: how does the service handle this case?","acceptedAnswer":{{"@type":"Answer","text":"Answer {k} for page {i}: the service handles this case within two working days, and a confirmation is sent by email once it is done."}}}}"#
        ));
    }
    let filler = "<p>Some text that a real page would carry around its FAQ block.</p>\n".repeat(60);
    format!(
        "<!doctype html><html lang=\"en\"><head><title>Page {i}</title><script type=\"application/ld+json\">{{\"@context\":\"https://schema.org\",\"@type\":\"FAQPage\",\"mainEntity\":[{qa}]}}</script></head><body>{filler}</body></html>"
    )
}

fn serve(mut s: TcpStream, log: &Log, pages: usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        buf.clear();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let host = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("host")
                    .then(|| v.trim().split(':').next().unwrap_or("").to_string())
            })
            .unwrap_or_default();
        if let Ok(mut l) = log.lock() {
            l.push((Instant::now(), host.clone(), path.clone()));
        }
        let (status, body) = if path == "/robots.txt" {
            ("404 Not Found", String::new())
        } else if path == "/" || path == "/index.html" {
            let links: String = (0..pages)
                .map(|i| format!("<a href=\"/p/{i}.html\">{i}</a>\n"))
                .collect();
            ("200 OK", format!("<html><body>{links}</body></html>"))
        } else if let Some(i) = path
            .strip_prefix("/p/")
            .and_then(|p| p.strip_suffix(".html"))
            .and_then(|p| p.parse::<usize>().ok())
        {
            ("200 OK", page(&host, i))
        } else {
            ("404 Not Found", String::new())
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn start(pages: usize) -> Result<(u16, Log), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let log: Log = Arc::default();
    let l = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let l = l.clone();
            std::thread::spawn(move || serve(stream, &l, pages));
        }
    });
    Ok((port, log))
}

fn dflow_crawl(
    dir: &Path,
    seeds: &[String],
    params: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("seeds.csv"),
        format!("url\n{}\n", seeds.join("\n")),
    )?;
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "version: 1\nname: crawl_bench\nnodes:\n  seeds: {{ op: csv, params: {{ paths: [seeds.csv] }} }}\n  crawl:\n    op: crawl\n    inputs: {{ seeds: seeds }}\n    params: {{ {params} }}\n"
        ),
    )?;
    let dflow = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("dflow"))
        .ok_or("no target dir")?;
    let t = Instant::now();
    let out = Command::new(dflow)
        .args(["run", "pipeline.yaml", "--quiet"])
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(t.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (pages, hosts, delay) = (arg(1, 2000), arg(2, 8), arg(3, 100));
    let work = std::env::temp_dir().join(format!("crawl_bench_{}", std::process::id()));

    // 1. Speed, no delay.
    let (port, log) = start(pages)?;
    let secs = dflow_crawl(
        &work.join("speed"),
        &[format!("http://127.0.0.1:{port}/index.html")],
        "allow_private: true, follow: same_host, max_depth: 1, delay_ms: 0, per_host_concurrency: 16, concurrency: 16, max_pages: 100000",
    )?;
    let fetched = log.lock().map(|l| l.len()).unwrap_or(0);
    println!(
        "dflow crawl: {fetched} requests in {secs:.2} s = {:.0} pages/s (16 in flight, WARC.gz written, pages read back)",
        fetched as f64 / secs
    );
    let wget_dir = work.join("wget");
    std::fs::create_dir_all(&wget_dir)?;
    let before = log.lock().map(|l| l.len()).unwrap_or(0);
    let t = Instant::now();
    let status = Command::new("wget")
        .args([
            "-q",
            "-r",
            "-l",
            "1",
            "-e",
            "robots=off",
            "--warc-file=wget",
            "-P",
            "site",
            &format!("http://127.0.0.1:{port}/index.html"),
        ])
        .current_dir(&wget_dir)
        .status();
    match status {
        Ok(_) => {
            let secs = t.elapsed().as_secs_f64();
            let n = log.lock().map(|l| l.len()).unwrap_or(0) - before;
            println!(
                "wget -r -l 1 --warc-file: {n} requests in {secs:.2} s = {:.0} pages/s (one connection)",
                n as f64 / secs
            );
        }
        Err(e) => println!("wget: not run ({e})"),
    }

    // 2. Politeness over several hosts.
    let (port, log) = start(pages / hosts)?;
    let seeds: Vec<String> = (0..hosts)
        .map(|h| format!("http://site{h}.bench:{port}/index.html"))
        .collect();
    let secs = dflow_crawl(
        &work.join("polite"),
        &seeds,
        &format!(
            "allow_private: true, resolve: {{ \"*.bench\": 127.0.0.1 }}, follow: same_host, max_depth: 1, delay_ms: {delay}, concurrency: 16, max_pages: 100000"
        ),
    )?;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let mut by_host: BTreeMap<&str, Vec<Instant>> = BTreeMap::new();
    for (at, host, _) in &log {
        by_host.entry(host.as_str()).or_default().push(*at);
    }
    let min_gap = by_host
        .values()
        .flat_map(|ts| ts.windows(2).map(|w| w[1].duration_since(w[0])))
        .min()
        .unwrap_or_default();
    println!(
        "politeness: {} requests to {} hosts in {secs:.2} s ({:.1} requests/s in all); smallest gap between two requests to one host: {:.1} ms (delay {delay} ms): {}",
        log.len(),
        by_host.len(),
        log.len() as f64 / secs,
        min_gap.as_secs_f64() * 1000.0,
        if min_gap >= Duration::from_millis(delay as u64) {
            "held"
        } else {
            "VIOLATED"
        }
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
