//! robots.txt rules of one origin, as RFC 9309 says to treat each outcome of
//! fetching it: a 2xx body is parsed (with `texting_robots`), a 4xx means no
//! rules (everything allowed), a 5xx, a 429 or no answer at all means the
//! site is unreachable and nothing may be fetched.

use std::time::Duration;

use texting_robots::Robot;

/// The robots.txt URL of an origin (`scheme://host[:port]`).
pub fn robots_url(url: &url::Url) -> Option<url::Url> {
    let mut u = url.clone();
    u.set_path("/robots.txt");
    u.set_query(None);
    u.set_fragment(None);
    u.set_username("").ok()?;
    u.set_password(None).ok()?;
    Some(u)
}

/// RFC 9309 §2.5: parsers must read at least 500 KiB.
pub const MAX_ROBOTS_BYTES: u64 = 512 * 1024;

pub enum Rules {
    /// No usable robots.txt (4xx): everything allowed.
    AllowAll,
    /// Unreachable (5xx, 429, network error): nothing allowed.
    DisallowAll(String),
    Parsed(Box<Robot>),
}

impl Rules {
    /// The rules for a fetch outcome: an HTTP status and body (the text,
    /// its content-encoding undone), or none.
    pub fn from_response(agent: &str, status: Option<u16>, body: &[u8], error: &str) -> Self {
        match status {
            Some(200..=299) => match Robot::new(agent, body) {
                Ok(r) => Rules::Parsed(Box::new(r)),
                // Unparseable rules are no rules (RFC 9309 §2.2: parsers
                // must be liberal); texting_robots rarely refuses anything.
                Err(_) => Rules::AllowAll,
            },
            Some(429) => Rules::DisallowAll("robots.txt answered 429".into()),
            Some(s @ 500..=599) => Rules::DisallowAll(format!("robots.txt answered {s}")),
            Some(_) => Rules::AllowAll,
            None => Rules::DisallowAll(format!("robots.txt unreachable: {error}")),
        }
    }

    /// Why `url` may not be fetched, or `None` when it may.
    pub fn refusal(&self, url: &str) -> Option<String> {
        match self {
            Rules::AllowAll => None,
            Rules::DisallowAll(why) => Some(format!("not fetched: {why}")),
            Rules::Parsed(r) => (!r.allowed(url)).then(|| "disallowed by robots.txt".to_string()),
        }
    }

    /// The `Crawl-delay` for this agent, if any, to the millisecond (the
    /// parser reads it as an `f32`: `0.3` is not quite 300 ms).
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Rules::Parsed(r) => r.delay.filter(|d| d.is_finite() && *d > 0.0).map(|d| {
                Duration::from_millis((f64::from(d.min(86_400.0)) * 1000.0).round() as u64)
            }),
            _ => None,
        }
    }
}

/// The product token of a User-Agent string (`dflow-crawler/0.1 (+url)` →
/// `dflow-crawler`), which robots.txt groups are matched against.
pub fn agent_token(user_agent: &str) -> &str {
    user_agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("*")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXT: &[u8] =
        b"User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n\nUser-agent: other\nDisallow: /\n";

    #[test]
    fn rules_follow_rfc_9309_outcomes() {
        let r = Rules::from_response("dflow-crawler", Some(200), TXT, "");
        assert_eq!(
            r.refusal("http://a.example/private/x").as_deref(),
            Some("disallowed by robots.txt")
        );
        assert!(r.refusal("http://a.example/public").is_none());
        assert_eq!(r.crawl_delay(), Some(Duration::from_secs(2)));
        let other = Rules::from_response("other", Some(200), TXT, "");
        assert!(other.refusal("http://a.example/public").is_some());
        assert!(
            Rules::from_response("x", Some(404), b"", "")
                .refusal("http://a.example/private/x")
                .is_none()
        );
        assert!(
            Rules::from_response("x", Some(503), b"", "")
                .refusal("http://a.example/")
                .expect("test input")
                .contains("503")
        );
        assert!(
            Rules::from_response("x", None, b"", "timed out")
                .refusal("http://a.example/")
                .expect("test input")
                .contains("timed out")
        );
    }

    #[test]
    fn urls_and_tokens() {
        let u = url::Url::parse("https://user:pw@a.example:8443/x/y?q=1#f").expect("test input");
        assert_eq!(
            robots_url(&u).expect("test input").as_str(),
            "https://a.example:8443/robots.txt"
        );
        assert_eq!(
            agent_token("dflow-crawler/0.1 (+https://x)"),
            "dflow-crawler"
        );
        assert_eq!(agent_token(""), "*");
    }
}
