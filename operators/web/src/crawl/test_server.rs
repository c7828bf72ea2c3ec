//! A real HTTP/1.1 server on 127.0.0.1 for the crawl's unit tests, in the
//! manner of the one `tests/crawl.rs` starts: fixed answers by path, every
//! request logged with its time, one thread per connection,
//! `Connection: close`. Also the crawl configuration and client the tests
//! crawl it with (private addresses allowed, short delays).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::crawler::CrawlConfig;
use super::fetch::FetchConfig;

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
}

/// What the server answers for one path.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `200 OK` with a content type and, when not empty, a content encoding.
    pub fn ok(content_type: &str, encoding: &str, body: Vec<u8>) -> Self {
        let mut headers = vec![("Content-Type", content_type.to_string())];
        if !encoding.is_empty() {
            headers.push(("Content-Encoding", encoding.to_string()));
        }
        Reply {
            status: "200 OK",
            headers,
            body,
        }
    }
}

pub struct Server {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Server {
    /// Serves `routes` (path → reply; anything else is a 404) until the
    /// test process ends.
    pub fn start(routes: BTreeMap<String, Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let log = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, log) = (routes.clone(), log.clone());
                thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Server { port, hits }
    }

    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("test URL")
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }
}

fn serve(mut s: TcpStream, routes: &BTreeMap<String, Reply>, log: &Mutex<Vec<Hit>>) {
    let Some(head) = dflow_engine::testing::read_request_head(&mut s) else {
        return;
    };
    let path = head.path;
    log.lock().expect("lock").push(Hit {
        at: Instant::now(),
        path: path.clone(),
    });
    let reply = routes.get(&path).cloned().unwrap_or(Reply {
        status: "404 Not Found",
        headers: Vec::new(),
        body: b"no".to_vec(),
    });
    let mut out = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(&reply.body);
}

/// A crawl of the test server: private addresses allowed, `delay` between
/// requests to it, bodies cut at `max_body_bytes`, no retries.
pub fn config(delay: Duration, max_body_bytes: u64) -> CrawlConfig {
    CrawlConfig {
        fetch: FetchConfig {
            user_agent: "dflow-test/1.0".into(),
            max_body_bytes,
            retries: 0,
            backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_millis(10),
            timeout: Duration::from_secs(10),
            allow_private: true,
        },
        obey_robots: true,
        delay,
        max_crawl_delay: Duration::from_secs(30),
        per_host_concurrency: 1,
        concurrency: 4,
        follow: super::Follow::None,
        max_depth: 0,
        max_pages: 100,
        max_redirects: 5,
        warc_file_bytes: 1 << 30,
        progress: None,
    }
}

/// The HTTP client the crawl operator builds, for `config`.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(super::guard::resolver(
            true,
            super::guard::Overrides::default(),
        ))
        .build()
        .expect("client")
}

/// Runs a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// Brotli of `data`.
pub fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("br");
    }
    out
}

/// zlib-wrapped deflate of `data`.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).expect("zlib");
    z.finish().expect("zlib")
}

/// Raw deflate of `data`.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).expect("deflate");
    z.finish().expect("deflate")
}

/// An HTML page of about `n` bytes of letters that barely compress (a
/// fixed pseudo-random sequence), so that its gzip or brotli stream is
/// about as long as the page.
pub fn incompressible_page(n: usize) -> Vec<u8> {
    let mut out = b"<!doctype html><html><head><title>t</title></head><body><p>".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(b'a' + (x % 26) as u8);
    }
    out.extend_from_slice(b"</p></body></html>");
    out
}
