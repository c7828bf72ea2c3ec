//! A real HTTP/1.1 server in the Hugging Face Hub's URL layout, for the
//! download tests (this crate's and the CLI's, hence not `cfg(test)`): `GET /api/models/{org}/{name}/revision/{rev}`,
//! `HEAD|GET /{org}/{name}/resolve/{rev}/{path}` (git files answered
//! there with their blob sha1 as ETag, LFS files redirected to `/cdn/…`
//! with `X-Linked-Etag`/`X-Linked-Size`, as the Hub does), and the CDN with
//! byte ranges. Faults on demand: a connection dropped half-way through a
//! file's first download, a file served with other bytes than its ETag
//! names, a repository that needs a token.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// One file of a repository.
#[derive(Clone)]
pub struct RepoFile {
    pub bytes: Vec<u8>,
    /// Stored in LFS (served from the CDN, ETag = sha256).
    pub lfs: bool,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorized: bool,
}

#[derive(Default)]
pub struct Faults {
    /// Paths whose first CDN or resolve GET stops after half the bytes.
    pub drop_first: Vec<String>,
    /// Paths served with one byte changed.
    pub corrupt: Vec<String>,
    /// The token every request to the Hub (not the CDN) must carry.
    pub token: Option<String>,
}

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct State {
    repo: String,
    cdn: String,
    files: BTreeMap<String, RepoFile>,
    faults: Faults,
    dropped: Mutex<Vec<String>>,
    hits: Mutex<Vec<Hit>>,
}

pub struct TestHub {
    pub endpoint: String,
    state: Arc<State>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn etag(f: &RepoFile) -> String {
    if f.lfs {
        hex(&Sha256::digest(&f.bytes))
    } else {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", f.bytes.len()).as_bytes());
        h.update(&f.bytes);
        hex(&h.finalize())
    }
}

impl TestHub {
    /// Serves `repo` (`org/name`, revision `main` = [`COMMIT`]).
    pub fn start(repo: &str, files: BTreeMap<String, RepoFile>, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // The CDN is another origin, as on the Hub: no token goes there.
        let cdn = TcpListener::bind("127.0.0.1:0").expect("bind");
        let cdn_port = cdn.local_addr().expect("addr").port();
        let state = Arc::new(State {
            repo: repo.to_string(),
            cdn: format!("http://127.0.0.1:{cdn_port}"),
            files,
            faults,
            dropped: Mutex::new(Vec::new()),
            hits: Mutex::new(Vec::new()),
        });
        for listener in [listener, cdn] {
            let shared = state.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = shared.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            });
        }
        TestHub {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("hits").clone()
    }

    pub fn etag(&self, path: &str) -> String {
        etag(&self.state.files[path])
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(mut stream: TcpStream, state: &State) {
    let Some(head) = dflow_engine::testing::read_request_head(&mut stream) else {
        return;
    };
    let (method, path) = (head.method.clone(), head.path.clone());
    let range = head.header("range").map(str::to_string);
    let auth = head.header("authorization").map(str::to_string);
    state.hits.lock().expect("hits").push(Hit {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
        authorized: auth.is_some(),
    });
    let allowed = match &state.faults.token {
        Some(t) => auth.as_deref() == Some(&format!("Bearer {t}")),
        None => true,
    };
    let commit_headers = vec![("X-Repo-Commit".to_string(), COMMIT.to_string())];
    let api = format!("/api/models/{}/revision/", state.repo);
    if let Some(rev) = path.strip_prefix(&api) {
        if !allowed {
            return respond(&mut stream, "401 Unauthorized", &[], b"");
        }
        if rev != "main" && rev != COMMIT {
            return respond(
                &mut stream,
                "404 Not Found",
                &[],
                b"{\"error\":\"Revision not found\"}",
            );
        }
        let siblings: Vec<String> = state
            .files
            .keys()
            .map(|f| format!("{{\"rfilename\":\"{f}\"}}"))
            .collect();
        let body = format!(
            "{{\"id\":\"{}\",\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
            state.repo,
            siblings.join(",")
        );
        return respond(&mut stream, "200 OK", &commit_headers, body.as_bytes());
    }
    if path.starts_with("/api/") {
        return respond(
            &mut stream,
            "404 Not Found",
            &[],
            b"{\"error\":\"Repository not found\"}",
        );
    }
    let resolve = format!("/{}/resolve/", state.repo);
    if let Some(rest) = path.strip_prefix(&resolve) {
        if !allowed {
            return respond(&mut stream, "401 Unauthorized", &[], b"");
        }
        let Some((rev, file)) = rest.split_once('/') else {
            return respond(&mut stream, "404 Not Found", &[], b"");
        };
        let Some(f) = state
            .files
            .get(file)
            .filter(|_| rev == "main" || rev == COMMIT)
        else {
            return respond(&mut stream, "404 Not Found", &[], b"");
        };
        let tag = etag(f);
        if f.lfs {
            let mut h = commit_headers;
            h.push(("X-Linked-Etag".into(), format!("\"{tag}\"")));
            h.push(("X-Linked-Size".into(), f.bytes.len().to_string()));
            h.push((
                "Location".into(),
                format!("{}/cdn/{tag}?file={file}", state.cdn),
            ));
            h.push(("Content-Length".into(), "0".into()));
            return respond(&mut stream, "302 Found", &h, b"");
        }
        return send_file(&mut stream, state, &method, file, f, &tag, range.as_deref());
    }
    if let Some(rest) = path.strip_prefix("/cdn/") {
        let file = rest.split_once("?file=").map(|(_, f)| f).unwrap_or("");
        if let Some(f) = state.files.get(file) {
            let tag = etag(f);
            return send_file(&mut stream, state, &method, file, f, &tag, range.as_deref());
        }
    }
    respond(&mut stream, "404 Not Found", &[], b"")
}

fn send_file(
    stream: &mut TcpStream,
    state: &State,
    method: &str,
    name: &str,
    f: &RepoFile,
    tag: &str,
    range: Option<&str>,
) {
    let mut bytes = f.bytes.clone();
    if state.faults.corrupt.iter().any(|c| c == name)
        && let Some(b) = bytes.first_mut()
    {
        *b ^= 0xff;
    }
    let start: usize = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
        .min(bytes.len());
    let body = &bytes[start..];
    let mut h = vec![
        ("ETag".to_string(), format!("\"{tag}\"")),
        ("Content-Length".to_string(), body.len().to_string()),
        ("X-Repo-Commit".to_string(), COMMIT.to_string()),
    ];
    let status = if start > 0 {
        h.push((
            "Content-Range".into(),
            format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
        ));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    if method == "HEAD" {
        return respond(stream, status, &h, b"");
    }
    let drop_now = state.faults.drop_first.iter().any(|d| d == name) && {
        let mut dropped = state.dropped.lock().expect("dropped");
        let first = !dropped.iter().any(|d| d == name);
        dropped.push(name.to_string());
        first
    };
    if drop_now {
        // Announce everything, send half, hang up.
        respond(stream, status, &h, &body[..body.len() / 2]);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    respond(stream, status, &h, body);
}
