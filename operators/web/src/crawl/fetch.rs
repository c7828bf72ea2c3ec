//! One HTTP GET, as the crawler makes it: no automatic redirects (each hop
//! is scheduled like any URL, so robots.txt, politeness and the address
//! policy apply to it), the body read up to a cap, retries with exponential
//! backoff on 429, 5xx, timeouts and failed connections.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::guard;
use crate::warc::http::decode_content;
use crate::warc::writer::now_ms;

/// The request settings shared by every fetch of a crawl.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    pub user_agent: String,
    pub max_body_bytes: u64,
    pub retries: u32,
    pub backoff: Duration,
    /// Longest `Retry-After` honoured; longer waits give up instead.
    pub max_retry_after: Duration,
    pub timeout: Duration,
    pub allow_private: bool,
}

pub const ACCEPT: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5";
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// A response as received: status line parts, raw headers, the body bytes
/// as served (content-encoding kept; transfer-encoding undone by the
/// client).
#[derive(Debug)]
pub struct Fetched {
    pub url: url::Url,
    pub status: u16,
    pub reason: String,
    pub version: &'static str,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The body was longer than the cap and was cut.
    pub truncated: bool,
    pub ip: Option<IpAddr>,
    pub attempts: u32,
    pub fetched_at_ms: i64,
}

impl Fetched {
    /// The first header of this name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The `Content-Encoding`, trimmed and lowercased (empty when none).
    pub fn content_encoding(&self) -> String {
        self.header("content-encoding")
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The body with its content-encoding (gzip, deflate, br) undone, at
    /// most `max` bytes of it, by the decoder the WARC reader uses (the
    /// client undid any chunking). A stream cut at the size cap gives what
    /// decoded before the cut; an error says why nothing did.
    pub fn decoded_body(&self, max: u64) -> Result<Cow<'_, [u8]>, String> {
        decode_content(&self.body, &self.content_encoding(), max)
    }

    /// The HTTP message as the WARC `response` record's block. The client
    /// undid any chunked transfer-encoding, so that header is renamed (the
    /// block holds the plain body).
    pub fn http_block(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(
            format!("{} {} {}\r\n", self.version, self.status, self.reason).as_bytes(),
        );
        for (k, v) in &self.headers {
            let name = if k.eq_ignore_ascii_case("transfer-encoding") {
                "X-Crawler-Transfer-Encoding"
            } else {
                k.as_str()
            };
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The WARC `request` record's block for a GET of `url`.
pub fn request_block(url: &url::Url, user_agent: &str) -> Vec<u8> {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: {ACCEPT}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n\r\n"
    )
    .into_bytes()
}

/// Why a URL yielded no response.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    pub attempts: u32,
    /// The address policy refused the host (no request was made).
    pub refused: bool,
}

enum Attempt {
    Done(Fetched),
    Refused(String),
    /// Worth another try after this long (at least the backoff).
    Retry {
        wait: Option<Duration>,
        last: Result<Fetched, String>,
    },
    Fail(String),
}

/// GETs `url` with the retry policy; a final 429/5xx is returned as a
/// response (it is what the server said), a final network error as a
/// failure.
pub async fn fetch(
    client: &reqwest::Client,
    cfg: &FetchConfig,
    url: &url::Url,
    body_cap: u64,
) -> Result<Fetched, Failure> {
    if let Some(reason) =
        guard::ip_literal(url).and_then(|ip| guard::refusal(ip, cfg.allow_private))
    {
        return Err(Failure {
            reason,
            attempts: 0,
            refused: true,
        });
    }
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = once(client, cfg, url, body_cap, attempt).await;
        let (wait, last) = match outcome {
            Attempt::Done(f) => return Ok(f),
            Attempt::Refused(reason) => {
                return Err(Failure {
                    reason,
                    attempts: attempt,
                    refused: true,
                });
            }
            Attempt::Fail(reason) => {
                return Err(Failure {
                    reason,
                    attempts: attempt,
                    refused: false,
                });
            }
            Attempt::Retry { wait, last } => (wait, last),
        };
        let backoff = cfg.backoff.saturating_mul(1 << (attempt - 1).min(16));
        let wait = wait.unwrap_or(backoff).max(backoff);
        if attempt > cfg.retries || wait > cfg.max_retry_after.max(cfg.backoff) {
            return last.map_err(|reason| Failure {
                reason,
                attempts: attempt,
                refused: false,
            });
        }
        tokio::time::sleep(wait).await;
    }
}

async fn once(
    client: &reqwest::Client,
    cfg: &FetchConfig,
    url: &url::Url,
    body_cap: u64,
    attempt: u32,
) -> Attempt {
    let started = Instant::now();
    let fetched_at_ms = now_ms();
    let sent = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(reqwest::header::ACCEPT_ENCODING, ACCEPT_ENCODING)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => return network_error(&e, cfg, started),
    };
    let status = resp.status();
    let headers: Vec<(String, Vec<u8>)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = body_cap.saturating_sub(body.len() as u64) as usize;
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return network_error(&e, cfg, started),
        }
    }
    let fetched = Fetched {
        url: url.clone(),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        version: match resp.version() {
            reqwest::Version::HTTP_09 => "HTTP/0.9",
            reqwest::Version::HTTP_10 => "HTTP/1.0",
            reqwest::Version::HTTP_2 => "HTTP/2",
            reqwest::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        },
        headers,
        body,
        truncated,
        ip: resp.remote_addr().map(|a| a.ip()),
        attempts: attempt,
        fetched_at_ms,
    };
    if status.as_u16() == 429 || status.is_server_error() {
        let wait = fetched
            .header("retry-after")
            .and_then(|v| retry_after(&v, now_ms()));
        return Attempt::Retry {
            wait,
            last: Ok(fetched),
        };
    }
    Attempt::Done(fetched)
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (RFC 9110
/// IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now_ms`.
pub fn retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // "Sun, 06 Nov 1994 08:49:37 GMT" → 1994-11-06T08:49:37Z.
    let mut parts = v.split_whitespace().skip(1);
    let (day, month, year, time) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(month))? + 1;
    let at = crate::warc::parse_warc_date(&format!("{year}-{m:02}-{day:0>2}T{time}Z"))?;
    Some(Duration::from_millis(
        u64::try_from(at - now_ms).unwrap_or(0),
    ))
}

fn network_error(e: &reqwest::Error, cfg: &FetchConfig, started: Instant) -> Attempt {
    // A refusal by the address policy is final; its message is the reason.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<guard::Refused>() {
            return Attempt::Refused(r.0.clone());
        }
        source = s.source();
    }
    let reason = if e.is_timeout() {
        format!(
            "timed out after {:.1} s (timeout {:.1} s)",
            started.elapsed().as_secs_f64(),
            cfg.timeout.as_secs_f64()
        )
    } else {
        // reqwest's own message repeats the URL; the causes say what
        // happened.
        let mut chain = Vec::new();
        let mut s: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(inner) = s {
            chain.push(inner.to_string());
            s = inner.source();
        }
        let msg = if chain.is_empty() {
            e.to_string()
        } else {
            chain.join(": ")
        };
        if e.is_connect() {
            format!("connection failed: {msg}")
        } else {
            format!("request failed: {msg}")
        }
    };
    if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
        Attempt::Retry {
            wait: None,
            last: Err(reason),
        }
    } else {
        Attempt::Fail(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after(" 7 ", 0), Some(Duration::from_secs(7)));
        let now = crate::warc::parse_warc_date("1994-11-06T08:49:30Z").expect("date");
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        // A date already past means no wait.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
