//! The crawl loop: a frontier per host, politeness (one robots.txt per
//! origin, a delay between requests to a host, a per-host and a global
//! concurrency limit), redirects and links scheduled as URLs of their own,
//! every response written to WARC and journalled so that an interrupted
//! crawl resumes without fetching again what it already has.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fetch::{self, Failure, FetchConfig, Fetched};
use super::journal::{self, Entry, Journal};
use super::links;
use super::robots::{self, Rules};
use crate::warc::writer::{RecordOut, WarcWriter, now_ms};

/// WARC files of a crawl are named `crawl-NNNNN.warc.gz`.
pub const WARC_PREFIX: &str = "crawl";

/// How the crawl behaves (built from the operator's params).
#[derive(Clone, Debug)]
pub struct CrawlConfig {
    pub fetch: FetchConfig,
    pub obey_robots: bool,
    /// Least time between two requests to one host.
    pub delay: Duration,
    /// Longest robots.txt `Crawl-delay` honoured (longer ones are cut to it).
    pub max_crawl_delay: Duration,
    pub per_host_concurrency: usize,
    pub concurrency: usize,
    pub follow: super::Follow,
    pub max_depth: u32,
    pub max_pages: u64,
    pub max_redirects: u32,
    pub warc_file_bytes: u64,
    /// Prefix of the progress lines on stderr (the node's name); `None`
    /// prints none.
    pub progress: Option<String>,
}

/// How often a long crawl says where it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// A URL waiting in its host's queue.
#[derive(Clone, Debug)]
struct Queued {
    url: url::Url,
    depth: u32,
    /// The redirects that led here, oldest first.
    chain: Vec<String>,
}

#[derive(Default)]
struct Host {
    queue: VecDeque<Queued>,
    inflight: usize,
    ready_at: Option<Instant>,
    rules: Option<Arc<Rules>>,
    delay: Duration,
}

struct RobotsFetch {
    url: url::Url,
    result: Result<Fetched, Failure>,
    rules: Arc<Rules>,
}

/// What a fetch task brings back.
struct Done {
    host: String,
    item: Queued,
    robots: Option<RobotsFetch>,
    /// `None`: robots.txt (fetched by this task) forbade the page.
    result: Option<Result<Fetched, Failure>>,
}

/// The outcome of a crawl: every journalled URL (robots.txt included), and
/// the URLs refused before any request (redirect loops, too many
/// redirects).
pub struct Outcome {
    pub entries: Vec<Entry>,
    pub refused: Vec<(String, u32, String)>,
}

impl Outcome {
    /// The unit's note: pages with a response, and how many of them were
    /// cut at the size cap (kept, flagged `truncated` in `fetches` and
    /// `WARC-Truncated: length` in the WARC file).
    pub fn note(&self) -> String {
        let fetched = self
            .entries
            .iter()
            .filter(|e| e.kind == "page" && e.status.is_some())
            .count();
        format!(
            "{fetched} pages fetched, {} cut at max_body_bytes",
            truncated_pages(&self.entries)
        )
    }
}

/// Pages whose body was cut at the size cap.
fn truncated_pages(entries: &[Entry]) -> usize {
    entries
        .iter()
        .filter(|e| e.kind == "page" && e.truncated)
        .count()
}

struct Crawl {
    cfg: Arc<CrawlConfig>,
    client: reqwest::Client,
    agent: String,
    hosts: HashMap<String, Host>,
    order: Vec<String>,
    next_host: usize,
    seen: HashSet<String>,
    admitted: u64,
    replay: HashMap<String, Entry>,
    replay_robots: HashMap<String, Entry>,
    writer: WarcWriter,
    journal: Journal,
    entries: Vec<Entry>,
    refused: Vec<(String, u32, String)>,
}

/// Crawls from `seeds` into `dir` (WARC files and the journal), resuming
/// what an interrupted run left there.
pub async fn run(
    cfg: CrawlConfig,
    client: reqwest::Client,
    seeds: Vec<url::Url>,
    dir: &Path,
) -> std::io::Result<Outcome> {
    let recovered = journal::recover(dir, WARC_PREFIX)?;
    let mut replay = HashMap::new();
    let mut replay_robots = HashMap::new();
    for e in recovered.entries {
        if e.kind == "robots" {
            replay_robots.insert(e.url.clone(), e);
        } else {
            replay.insert(e.url.clone(), e);
        }
    }
    let agent = robots::agent_token(&cfg.fetch.user_agent).to_string();
    let mut crawl = Crawl {
        writer: WarcWriter::new(dir, WARC_PREFIX, cfg.warc_file_bytes, recovered.next_file),
        journal: Journal::open(dir)?,
        cfg: Arc::new(cfg),
        client,
        agent,
        hosts: HashMap::new(),
        order: Vec::new(),
        next_host: 0,
        seen: HashSet::new(),
        admitted: 0,
        replay,
        replay_robots,
        entries: Vec::new(),
        refused: Vec::new(),
    };
    for seed in seeds {
        crawl.admit(seed, 0, Vec::new());
    }
    crawl.drive().await?;
    crawl.writer.finish()?;
    Ok(Outcome {
        entries: crawl.entries,
        refused: crawl.refused,
    })
}

fn host_key(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl Crawl {
    /// Adds a URL to its host's queue unless it was seen or the page budget
    /// is spent.
    fn admit(&mut self, mut url: url::Url, depth: u32, chain: Vec<String>) {
        url.set_fragment(None);
        if self.seen.contains(url.as_str()) {
            return;
        }
        if self.admitted >= self.cfg.max_pages {
            // Links past the budget are simply not followed; a seed left
            // out is said.
            if depth == 0 && chain.is_empty() {
                self.refused.push((
                    url.to_string(),
                    0,
                    format!("not fetched: max_pages ({}) reached", self.cfg.max_pages),
                ));
            }
            return;
        }
        self.seen.insert(url.as_str().to_string());
        self.admitted += 1;
        let key = host_key(&url);
        let host = self.hosts.entry(key.clone()).or_insert_with(|| {
            self.order.push(key.clone());
            Host {
                delay: self.cfg.delay,
                rules: (!self.cfg.obey_robots).then(|| Arc::new(Rules::AllowAll)),
                ..Host::default()
            }
        });
        host.queue.push_back(Queued { url, depth, chain });
    }

    async fn drive(&mut self) -> std::io::Result<()> {
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut said = Instant::now();
        loop {
            if said.elapsed() >= PROGRESS_EVERY {
                said = Instant::now();
                self.say_progress(tasks.len());
            }
            self.launch(&mut tasks)?;
            let wake = self.next_ready();
            if tasks.is_empty() {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => return Ok(()),
                }
                continue;
            }
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                done = tasks.join_next() => {
                    match done {
                        Some(Ok(done)) => self.finish(done)?,
                        Some(Err(e)) => return Err(std::io::Error::other(format!("crawl task failed: {e}"))),
                        None => {}
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or(far)), if wake.is_some() => {}
            }
        }
    }

    fn say_progress(&self, in_flight: usize) {
        let Some(node) = &self.cfg.progress else {
            return;
        };
        let done = self.entries.iter().filter(|e| e.kind == "page").count();
        let failed = self
            .entries
            .iter()
            .filter(|e| e.kind == "page" && e.error.is_some())
            .count();
        let cut = truncated_pages(&self.entries);
        let queued: usize = self.hosts.values().map(|h| h.queue.len()).sum();
        let hosts = self.hosts.values().filter(|h| !h.queue.is_empty()).count();
        eprintln!(
            "dflow: {node}: {done} URLs done ({failed} without a page, {cut} cut at max_body_bytes), {in_flight} in flight, {queued} queued on {hosts} hosts"
        );
    }

    /// The earliest time a host with queued URLs and a free slot may be
    /// asked again (when every such host is in its politeness delay).
    fn next_ready(&self) -> Option<Instant> {
        self.hosts
            .values()
            .filter(|h| !h.queue.is_empty() && h.inflight < self.slots(h))
            .map(|h| h.ready_at.unwrap_or_else(Instant::now))
            .min()
    }

    fn slots(&self, h: &Host) -> usize {
        // One request at a time until robots.txt is known (it is fetched
        // once, by the first request to the host).
        if h.rules.is_none() {
            1
        } else {
            self.cfg.per_host_concurrency.max(1)
        }
    }

    /// Starts fetches, round-robin over hosts, while slots are free.
    fn launch(&mut self, tasks: &mut JoinSet<Done>) -> std::io::Result<()> {
        let mut progressed = true;
        while progressed && tasks.len() < self.cfg.concurrency.max(1) {
            progressed = false;
            let n = self.order.len();
            for i in 0..n {
                if tasks.len() >= self.cfg.concurrency.max(1) {
                    break;
                }
                let key = self.order[(self.next_host + i) % n].clone();
                if self.launch_one(&key, tasks)? {
                    progressed = true;
                }
            }
            if n > 0 {
                self.next_host = (self.next_host + 1) % n;
            }
        }
        Ok(())
    }

    /// Takes the next URL of host `key` if the host may be asked now: it is
    /// answered from the journal, refused by robots.txt, or fetched.
    fn launch_one(&mut self, key: &str, tasks: &mut JoinSet<Done>) -> std::io::Result<bool> {
        let now = Instant::now();
        let Some(h) = self.hosts.get(key) else {
            return Ok(false);
        };
        let slots = self.slots(h);
        if h.queue.is_empty() || h.inflight >= slots || h.ready_at.is_some_and(|t| t > now) {
            return Ok(false);
        }
        // robots.txt from an interrupted run's journal.
        if h.rules.is_none()
            && let Some(item) = h.queue.front()
            && let Some(robots_url) = robots::robots_url(&item.url)
            && let Some(e) = self.replay_robots.remove(robots_url.as_str())
        {
            let rules = Arc::new(self.rules_of(&e));
            self.keep(e);
            self.set_rules(key, rules);
        }
        let Some(h) = self.hosts.get_mut(key) else {
            return Ok(false);
        };
        let Some(item) = h.queue.pop_front() else {
            return Ok(false);
        };
        if let Some(e) = self.replay.remove(item.url.as_str()) {
            self.follow(&item, &e);
            self.keep(e);
            return Ok(true);
        }
        if let Some(reason) = h.rules.as_ref().and_then(|r| r.refusal(item.url.as_str())) {
            let e = failure_entry(&item, "page", reason, 0);
            self.record(e)?;
            return Ok(true);
        }
        let robots_url = if h.rules.is_none() {
            robots::robots_url(&item.url)
        } else {
            None
        };
        h.inflight += 1;
        let spacing = if robots_url.is_some() {
            h.delay * 2
        } else {
            h.delay
        };
        h.ready_at = Some(now + spacing);
        let delay = h.delay;
        let cfg = self.cfg.clone();
        let client = self.client.clone();
        let agent = self.agent.clone();
        let host = key.to_string();
        tasks.spawn(async move {
            let mut robots = None;
            if let Some(rurl) = robots_url {
                let result = fetch_robots(&client, &cfg.fetch, rurl.clone()).await;
                let url = rurl;
                // A refused host is refused for the page too, with the
                // same reason (no request is made).
                if let Err(f) = &result
                    && f.refused
                {
                    let page = Err(Failure {
                        reason: f.reason.clone(),
                        attempts: 0,
                        refused: true,
                    });
                    let rules = Arc::new(Rules::DisallowAll(f.reason.clone()));
                    return Done {
                        host,
                        item,
                        robots: Some(RobotsFetch { url, result, rules }),
                        result: Some(page),
                    };
                }
                let rules = Arc::new(match &result {
                    Ok(f) => Rules::from_response(&agent, Some(f.status), &robots_text(f), ""),
                    Err(e) => Rules::from_response(&agent, None, b"", &e.reason),
                });
                let refusal = rules.refusal(item.url.as_str());
                let wait = rules
                    .crawl_delay()
                    .map_or(delay, |d| d.min(cfg.max_crawl_delay).max(delay));
                robots = Some(RobotsFetch { url, result, rules });
                if refusal.is_some() {
                    return Done {
                        host,
                        item,
                        robots,
                        result: None,
                    };
                }
                tokio::time::sleep(wait).await;
            }
            let result =
                fetch::fetch(&client, &cfg.fetch, &item.url, cfg.fetch.max_body_bytes).await;
            Done {
                host,
                item,
                robots,
                result: Some(result),
            }
        });
        Ok(true)
    }

    fn rules_of(&self, e: &Entry) -> Rules {
        rules_from_entry(e, &self.agent)
    }

    fn set_rules(&mut self, key: &str, rules: Arc<Rules>) {
        let floor = self.cfg.delay;
        let cap = self.cfg.max_crawl_delay;
        if let Some(h) = self.hosts.get_mut(key) {
            h.delay = rules.crawl_delay().map_or(floor, |d| d.min(cap).max(floor));
            h.rules = Some(rules);
        }
    }

    /// Writes what a task fetched, journals it and schedules what it
    /// points to.
    fn finish(&mut self, done: Done) -> std::io::Result<()> {
        if let Some(h) = self.hosts.get_mut(&done.host) {
            h.inflight = h.inflight.saturating_sub(1);
            // The delay runs from the end of the host's last request (a
            // retried or slow one may outlast the delay set at launch).
            let after = Instant::now() + h.delay;
            h.ready_at = Some(h.ready_at.map_or(after, |t| t.max(after)));
        }
        if let Some(r) = done.robots {
            let mut e = match r.result {
                Ok(f) => {
                    let mut e = self.write_fetch(&f, 0, "robots")?;
                    // Journalled under the URL asked for (the origin's),
                    // whatever redirects led elsewhere.
                    e.url = r.url.to_string();
                    e.robots_body = Some(String::from_utf8_lossy(&robots_text(&f)).into_owned());
                    e
                }
                Err(fail) => {
                    failure_entry_url(r.url.as_str(), 0, "robots", fail.reason, fail.attempts)
                }
            };
            if let Rules::DisallowAll(why) = r.rules.as_ref()
                && e.error.is_none()
            {
                e.error = Some(why.clone());
            }
            self.record(e)?;
            self.set_rules(&done.host, r.rules.clone());
            if let Some(h) = self.hosts.get_mut(&done.host) {
                h.ready_at = Some(Instant::now() + h.delay);
            }
        }
        let entry = match done.result {
            None => {
                let reason = self
                    .hosts
                    .get(&done.host)
                    .and_then(|h| h.rules.as_ref())
                    .and_then(|r| r.refusal(done.item.url.as_str()))
                    .unwrap_or_else(|| "disallowed by robots.txt".into());
                failure_entry(&done.item, "page", reason, 0)
            }
            Some(Err(fail)) => failure_entry(&done.item, "page", fail.reason, fail.attempts),
            Some(Ok(f)) => {
                let mut e = self.write_fetch(&f, done.item.depth, "page")?;
                if (300..400).contains(&f.status) {
                    e.location = f
                        .header("location")
                        .and_then(|l| f.url.join(l.trim()).ok())
                        .map(|u| u.to_string());
                }
                if f.status == 200
                    && self.cfg.follow != super::Follow::None
                    && done.item.depth < self.cfg.max_depth
                {
                    e.links = page_links(&f, self.cfg.follow);
                }
                e
            }
        };
        self.follow(&done.item, &entry);
        self.record(entry)
    }

    /// Schedules the redirect target or the links of a finished URL.
    fn follow(&mut self, item: &Queued, e: &Entry) {
        if let Some(loc) = &e.location {
            let Ok(target) = url::Url::parse(loc) else {
                return;
            };
            let mut chain = item.chain.clone();
            chain.push(item.url.to_string());
            let mut t = target.clone();
            t.set_fragment(None);
            if chain.iter().any(|c| c == t.as_str()) {
                let path = chain.join(" → ");
                self.refused.push((
                    t.to_string(),
                    item.depth,
                    format!("redirect loop: {path} → {t}"),
                ));
            } else if chain.len() > self.cfg.max_redirects as usize {
                self.refused.push((
                    t.to_string(),
                    item.depth,
                    format!(
                        "too many redirects (more than {}) from {}",
                        self.cfg.max_redirects, chain[0]
                    ),
                ));
            } else if matches!(t.scheme(), "http" | "https") {
                self.admit(t, item.depth, chain);
            }
            return;
        }
        // The links were chosen by the `follow` mode when the page came in.
        for link in &e.links {
            if let Ok(u) = url::Url::parse(link) {
                self.admit(u, item.depth + 1, Vec::new());
            }
        }
    }

    /// A request and its response, as two WARC records in one file.
    fn write_fetch(&mut self, f: &Fetched, depth: u32, kind: &str) -> std::io::Result<Entry> {
        let request = fetch::request_block(&f.url, &self.cfg.fetch.user_agent);
        let request_id = self.writer.new_record_id(f.url.as_str());
        let response = f.http_block();
        let mut headers = vec![("WARC-Concurrent-To", request_id.clone())];
        if let Some(ip) = f.ip {
            headers.push(("WARC-IP-Address", ip.to_string()));
        }
        if f.truncated {
            headers.push(("WARC-Truncated", "length".to_string()));
        }
        let written = self.writer.write_group(&[
            RecordOut {
                warc_type: "request",
                target_uri: Some(f.url.as_str()),
                date_ms: f.fetched_at_ms,
                headers: vec![("WARC-Record-ID", request_id)],
                content_type: "application/http; msgtype=request",
                block: &request,
            },
            RecordOut {
                warc_type: "response",
                target_uri: Some(f.url.as_str()),
                date_ms: f.fetched_at_ms,
                headers,
                content_type: "application/http; msgtype=response",
                block: &response,
            },
        ])?;
        let resp = written.last();
        Ok(Entry {
            url: f.url.to_string(),
            depth,
            kind: kind.into(),
            status: Some(f.status),
            bytes: f.body.len() as u64,
            truncated: f.truncated,
            attempts: f.attempts,
            fetched_at_ms: f.fetched_at_ms,
            warc_file: resp.map(|w| w.file.clone()),
            warc_offset: resp.map(|w| w.offset),
            warc_end: resp.map(|w| w.end),
            error: None,
            location: None,
            links: Vec::new(),
            robots_body: None,
        })
    }

    fn record(&mut self, e: Entry) -> std::io::Result<()> {
        self.journal.append(&e)?;
        self.keep(e);
        Ok(())
    }

    /// Keeps an entry for the outputs, without what only the journal needs
    /// (links, robots.txt bodies): a long crawl's memory is its frontier,
    /// not every page's links.
    fn keep(&mut self, mut e: Entry) {
        e.links = Vec::new();
        e.robots_body = None;
        self.entries.push(e);
    }
}

/// The robots.txt rules a journalled robots entry stands for.
fn rules_from_entry(e: &Entry, agent: &str) -> Rules {
    match &e.error {
        Some(err) if e.status.is_none() => Rules::from_response(agent, None, b"", err),
        _ => Rules::from_response(
            agent,
            e.status,
            e.robots_body.as_deref().unwrap_or("").as_bytes(),
            "",
        ),
    }
}

fn failure_entry(item: &Queued, kind: &str, reason: String, attempts: u32) -> Entry {
    failure_entry_url(item.url.as_str(), item.depth, kind, reason, attempts)
}

fn failure_entry_url(url: &str, depth: u32, kind: &str, reason: String, attempts: u32) -> Entry {
    Entry {
        url: url.to_string(),
        depth,
        kind: kind.into(),
        status: None,
        bytes: 0,
        truncated: false,
        attempts,
        fetched_at_ms: now_ms(),
        warc_file: None,
        warc_offset: None,
        warc_end: None,
        error: Some(reason),
        location: None,
        links: Vec::new(),
        robots_body: None,
    }
}

/// robots.txt, following up to five redirects (RFC 9309 §2.3.1.2).
async fn fetch_robots(
    client: &reqwest::Client,
    cfg: &FetchConfig,
    mut url: url::Url,
) -> Result<Fetched, Failure> {
    for _ in 0..5 {
        let result = fetch::fetch(client, cfg, &url, robots::MAX_ROBOTS_BYTES).await;
        let next = match &result {
            Ok(f) if (300..400).contains(&f.status) => {
                f.header("location").and_then(|l| f.url.join(l.trim()).ok())
            }
            _ => None,
        };
        match next {
            Some(n) => url = n,
            None => return result,
        }
    }
    fetch::fetch(client, cfg, &url, robots::MAX_ROBOTS_BYTES).await
}

/// The text of a fetched robots.txt: its content-encoding undone (servers
/// answer the crawler's `Accept-Encoding` on robots.txt too), at most
/// [`robots::MAX_ROBOTS_BYTES`] of it. A body that does not decode is
/// parsed as it came (RFC 9309 §2.2: parse liberally).
fn robots_text(f: &Fetched) -> std::borrow::Cow<'_, [u8]> {
    f.decoded_body(robots::MAX_ROBOTS_BYTES)
        .unwrap_or(std::borrow::Cow::Borrowed(&f.body))
}

/// The links of an HTML page to follow under `follow` (the page decoded as
/// the WARC reader decodes it: content-encoding undone, charset found).
fn page_links(f: &Fetched, follow: super::Follow) -> Vec<String> {
    let content_type = f.header("content-type");
    if content_type
        .as_deref()
        .is_some_and(|c| !c.to_ascii_lowercase().contains("html"))
    {
        return Vec::new();
    }
    let cap = f.body.len() as u64 * 20 + (1 << 20);
    let Ok(body) = f.decoded_body(cap) else {
        return Vec::new();
    };
    let html = crate::charset::decode_html(&body, content_type.as_deref()).text;
    let host = f.url.host_str();
    links::extract(&html, &f.url)
        .into_iter()
        .filter(|l| match follow {
            super::Follow::None => false,
            super::Follow::SameHost => l.url.host_str() == host,
            super::Follow::Hreflang => l.alternate,
        })
        .map(|l| l.url.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::test_server::{self, Reply, Server};
    use super::*;
    use crate::warc::http::parse_response;
    use crate::warc::reader::{Item, WarcReader};

    const ROBOTS: &[u8] = b"User-agent: *\nDisallow: /private/\nCrawl-delay: 0.3\n";

    fn page(title: &str) -> Vec<u8> {
        format!("<!doctype html><html><body><h1>{title}</h1></body></html>").into_bytes()
    }

    /// A response record as the WARC reader reads it back.
    struct Stored {
        /// Its `WARC-Truncated` header.
        truncated: Option<String>,
        /// The HTTP body, content-encoding undone, or why it cannot be.
        body: Result<Vec<u8>, String>,
    }

    /// The response records of the crawl in `dir`, by URL.
    fn responses(dir: &Path) -> BTreeMap<String, Stored> {
        let mut out = BTreeMap::new();
        for (_, path) in journal::warc_files(dir, WARC_PREFIX).expect("WARC files") {
            WarcReader::open(&path, 64 << 20)
                .expect("open")
                .for_each(|item| {
                    let Item::Record(mut r) = item else { return };
                    if r.header("WARC-Type") != Some("response") {
                        return;
                    }
                    let url = r.header("WARC-Target-URI").unwrap_or_default().to_string();
                    let truncated = r.header("WARC-Truncated").map(str::to_string);
                    let body = parse_response(std::mem::take(&mut r.block), 64 << 20)
                        .map(|resp| resp.into_body());
                    out.insert(url, Stored { truncated, body });
                })
                .expect("read");
        }
        out
    }

    #[test]
    fn compressed_robots_txt_is_decoded_and_obeyed() {
        for (encoding, body) in [
            ("gzip", test_server::gzip(ROBOTS)),
            ("br", test_server::brotli(ROBOTS)),
            ("deflate", test_server::zlib(ROBOTS)),
            ("deflate", test_server::deflate(ROBOTS)),
        ] {
            let routes = BTreeMap::from([
                (
                    "/robots.txt".to_string(),
                    Reply::ok("text/plain", encoding, body),
                ),
                ("/a".to_string(), Reply::ok("text/html", "", page("a"))),
                ("/b".to_string(), Reply::ok("text/html", "", page("b"))),
                (
                    "/private/x".to_string(),
                    Reply::ok("text/html", "", page("secret")),
                ),
            ]);
            let server = Server::start(routes);
            let dir = tempfile::tempdir().expect("temp dir");
            let seeds = ["/a", "/private/x", "/b"].map(|p| server.url(p)).to_vec();
            let cfg = test_server::config(Duration::from_millis(10), 1 << 20);
            let outcome = test_server::block_on(run(cfg, test_server::client(), seeds, dir.path()))
                .expect("crawl");

            let hits = server.hits();
            let paths = server.paths();
            assert_eq!(paths, ["/robots.txt", "/a", "/b"], "{encoding}");
            // Crawl-delay: 0.3 s between requests, not the 10 ms floor.
            for w in hits.windows(2) {
                let gap = w[1].at.duration_since(w[0].at);
                assert!(
                    gap >= Duration::from_millis(290),
                    "{encoding}: {} then {} after {gap:?}",
                    w[0].path,
                    w[1].path
                );
            }
            let private = outcome
                .entries
                .iter()
                .find(|e| e.url.ends_with("/private/x"))
                .expect("an entry for the disallowed page");
            assert_eq!(private.error.as_deref(), Some("disallowed by robots.txt"));
            // The journal keeps the decoded rules, so a resumed crawl obeys
            // them too.
            let journalled =
                std::fs::read_to_string(dir.path().join(journal::FILE)).expect("journal");
            let robots: Entry = journalled
                .lines()
                .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
                .find(|e| e.kind == "robots")
                .expect("a robots entry");
            assert_eq!(
                robots.robots_body.as_deref(),
                Some(std::str::from_utf8(ROBOTS).expect("text")),
                "{encoding}"
            );
            let rules = rules_from_entry(&robots, "dflow-test");
            assert_eq!(rules.crawl_delay(), Some(Duration::from_millis(300)));
        }
    }

    #[test]
    fn a_body_cut_at_the_size_cap_keeps_what_decoded_and_is_counted() {
        let cap = 16 * 1024;
        let big = test_server::incompressible_page(4 * cap);
        let small = page("small");
        let routes = BTreeMap::from([
            (
                "/gz".to_string(),
                Reply::ok("text/html", "gzip", test_server::gzip(&big)),
            ),
            (
                "/br".to_string(),
                Reply::ok("text/html", "br", test_server::brotli(&big)),
            ),
            (
                "/plain".to_string(),
                Reply::ok("text/html", "", big.clone()),
            ),
            (
                "/small".to_string(),
                Reply::ok("text/html", "gzip", test_server::gzip(&small)),
            ),
        ]);
        let server = Server::start(routes);
        let dir = tempfile::tempdir().expect("temp dir");
        let seeds = ["/gz", "/br", "/plain", "/small"]
            .map(|p| server.url(p))
            .to_vec();
        let cfg = test_server::config(Duration::ZERO, cap as u64);
        let outcome = test_server::block_on(run(cfg, test_server::client(), seeds, dir.path()))
            .expect("crawl");
        let records = responses(dir.path());
        for path in ["/gz", "/br", "/plain"] {
            let url = server.url(path).to_string();
            let stored = &records[&url];
            assert_eq!(stored.truncated.as_deref(), Some("length"), "{path}");
            // What decoded before the cut is the page's start, not nothing.
            let body = stored.body.as_ref().expect(path);
            assert!(body.len() > cap / 2, "{path}: {} bytes kept", body.len());
            assert!(big.starts_with(body), "{path}");
            let entry = outcome
                .entries
                .iter()
                .find(|e| e.url == url)
                .expect("an entry");
            assert!(entry.truncated && entry.error.is_none(), "{path}");
        }
        let url = server.url("/small").to_string();
        assert_eq!(records[&url].truncated, None);
        assert_eq!(records[&url].body.as_deref(), Ok(small.as_slice()));
        assert_eq!(outcome.note(), "4 pages fetched, 3 cut at max_body_bytes");
    }
}
