//! Which addresses the crawler may connect to.
//!
//! By default it refuses loopback, private, link-local, shared (CGNAT),
//! multicast, broadcast and unspecified addresses, so a seed list or a link
//! on the web cannot make it reach into the network it runs in. The check is
//! made on the addresses DNS returns, inside the resolver the HTTP client
//! connects with (so a name cannot resolve to one address when checked and
//! another when connected), and on IP-literal hosts before each request,
//! redirects included (each hop is a request of its own).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why `ip` is not a public unicast address, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if a == 0 {
        Some("an unspecified (0.0.0.0/8) address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else {
        None
    }
}

/// The reason a request to `ip` is refused under this policy.
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<String> {
    if allow_private {
        return None;
    }
    non_public(ip).map(|what| {
        format!("refused: {ip} is {what} (set `allow_private: true` to crawl private networks)")
    })
}

/// The host of a URL when it is an IP literal.
pub fn ip_literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// A refused lookup; its message is the rejection reason.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Fixed answers for some names (`host` or `*.suffix` → address), as
/// curl's `--resolve`: to crawl a staging copy of a site, or a test server.
#[derive(Clone, Debug, Default)]
pub struct Overrides(Vec<(String, IpAddr)>);

impl Overrides {
    /// Parses `pattern → address` pairs; the error names the bad entry.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for (pattern, addr) in pairs {
            let ip: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("`{addr}` (for `{pattern}`) is not an IP address"))?;
            out.push((pattern.trim().to_ascii_lowercase(), ip));
        }
        Ok(Self(out))
    }

    /// The address fixed for `host`, if any (exact names before wildcards).
    pub fn lookup(&self, host: &str) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(p, _)| *p == host)
            .or_else(|| {
                self.0.iter().find(|(p, _)| {
                    p.strip_prefix("*.")
                        .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
                })
            })
            .map(|(_, ip)| *ip)
    }
}

/// The system resolver (or the fixed answers) with the address policy
/// applied: non-public addresses are dropped from the answer; a name with
/// nothing left is refused.
pub struct GuardedResolver {
    pub allow_private: bool,
    pub overrides: Overrides,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        let fixed = self.overrides.lookup(&host);
        Box::pin(async move {
            // The port is the URL's: the connector sets it on each address.
            let found: Vec<SocketAddr> = match fixed {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| refusal(a.ip(), allow_private).is_none())
                .collect();
            if kept.is_empty() {
                let reason = match found.first() {
                    Some(a) => format!(
                        "refused: {host} resolves to {}: {} (set `allow_private: true` to crawl private networks)",
                        a.ip(),
                        non_public(a.ip()).unwrap_or("not allowed")
                    ),
                    None => format!("{host} has no address"),
                };
                return Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

pub fn resolver(allow_private: bool, overrides: Overrides) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver {
        allow_private,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for (ip, bad) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.20.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("0.0.0.0", true),
            ("100.64.0.1", true),
            ("8.8.8.8", false),
            ("172.32.0.1", false),
            ("::1", true),
            ("::", true),
            ("fe80::1", true),
            ("fd00::1", true),
            ("ff02::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("2606:4700::1111", false),
        ] {
            let ip: IpAddr = ip.parse().expect("test input");
            assert_eq!(non_public(ip).is_some(), bad, "{ip}");
        }
        assert!(refusal("127.0.0.1".parse().expect("test input"), true).is_none());
        let r = refusal("127.0.0.1".parse().expect("test input"), false).expect("test input");
        assert!(r.contains("loopback") && r.contains("allow_private"), "{r}");
    }

    #[test]
    fn resolver_refuses_localhost_unless_allowed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test input");
        let name: Name = "localhost".parse().expect("test input");
        let err = match rt.block_on(resolver(false, Overrides::default()).resolve(name)) {
            Ok(_) => panic!("localhost resolved"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("refused: localhost resolves to") && err.contains("loopback"),
            "{err}"
        );
        let name: Name = "localhost".parse().expect("test input");
        let addrs: Vec<_> = rt
            .block_on(resolver(true, Overrides::default()).resolve(name))
            .expect("test input")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn overrides_answer_first_and_still_meet_the_policy() {
        let map: std::collections::BTreeMap<String, String> = [
            ("*.example".to_string(), "127.0.0.1".to_string()),
            ("www.public.example".to_string(), "192.0.2.10".to_string()),
        ]
        .into();
        let o = Overrides::parse(&map).expect("test input");
        assert_eq!(
            o.lookup("shop.EXAMPLE"),
            Some("127.0.0.1".parse().expect("test input"))
        );
        assert_eq!(
            o.lookup("www.public.example"),
            Some("192.0.2.10".parse().expect("test input"))
        );
        assert_eq!(o.lookup("example"), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test input");
        let refused = rt.block_on(
            resolver(false, o.clone()).resolve("shop.example".parse().expect("test input")),
        );
        assert!(refused.is_err());
        let allowed: Vec<_> = rt
            .block_on(resolver(true, o).resolve("shop.example".parse().expect("test input")))
            .expect("test input")
            .collect();
        assert_eq!(allowed, ["127.0.0.1:0".parse().expect("test input")]);
        let bad: std::collections::BTreeMap<String, String> =
            [("a".to_string(), "nope".to_string())].into();
        assert!(
            Overrides::parse(&bad)
                .expect_err("should fail")
                .contains("`nope`")
        );
    }
}
