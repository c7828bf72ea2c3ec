//! Which addresses the crawler may connect to.
//!
//! By default it refuses loopback, private, link-local, shared (CGNAT),
//! benchmarking, reserved, multicast, broadcast and unspecified addresses,
//! the deprecated IPv6 site-local and IPv4-compatible ranges, 6to4 and
//! local-use NAT64 (and IPv4-mapped or well-known-prefix NAT64 addresses
//! whose IPv4 address is one of those), so a seed list or a link
//! on the web cannot make it reach into the network it runs in. The check is
//! made on the addresses DNS returns, inside the resolver the HTTP client
//! connects with (so a name cannot resolve to one address when checked and
//! another when connected), and on IP-literal hosts before each request,
//! redirects included (each hop is a request of its own).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why `ip` is not a public unicast address, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// IPv4: RFC 6890's special-purpose ranges a crawler must not reach.
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
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("a benchmarking (198.18.0.0/15) address")
    } else if a & 0xf0 == 240 {
        Some("a reserved (240.0.0.0/4) address")
    } else {
        None
    }
}

/// IPv6: the special ranges, and IPv4 reached through IPv6 (mapped,
/// compatible, NAT64, 6to4) judged by the IPv4 address or refused.
fn non_public_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        // ::ffff:0:0/96: the IPv4 address itself is what is reached.
        return non_public_v4(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96, NAT64's well-known prefix (RFC 6052): the last 32
        // bits are the IPv4 address the translator connects to.
        let [.., hi, lo] = s;
        return non_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() {
        Some("the unspecified address")
    } else if v6.is_multicast() {
        Some("a multicast address")
    } else if s[..6] == [0; 6] {
        Some("an IPv4-compatible (::/96, deprecated) address")
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        Some("a local-use NAT64 (64:ff9b:1::/48) address")
    } else if s[0] == 0x2002 {
        Some("a 6to4 (2002::/16) address")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("a site-local (fec0::/10, deprecated) address")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
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

    /// Every refused range: its name, one address inside it and one just
    /// outside (`None` where the next address is itself refused, for
    /// another reason, or there is none).
    const RANGES: &[(&str, &str, Option<&str>)] = &[
        ("0.0.0.0/8", "0.255.255.255", Some("1.0.0.0")),
        ("10.0.0.0/8", "10.255.255.255", Some("11.0.0.0")),
        ("100.64.0.0/10", "100.127.255.255", Some("100.128.0.0")),
        (
            "100.64.0.0/10 (low end)",
            "100.64.0.0",
            Some("100.63.255.255"),
        ),
        ("127.0.0.0/8", "127.0.0.1", Some("128.0.0.0")),
        ("169.254.0.0/16", "169.254.169.254", Some("169.255.0.0")),
        ("172.16.0.0/12", "172.31.255.255", Some("172.32.0.0")),
        ("192.168.0.0/16", "192.168.1.1", Some("192.169.0.0")),
        ("198.18.0.0/15", "198.19.255.255", Some("198.20.0.0")),
        (
            "198.18.0.0/15 (low end)",
            "198.18.0.0",
            Some("198.17.255.255"),
        ),
        ("224.0.0.0/4", "224.0.0.1", Some("223.255.255.255")),
        // 239.255.255.255, below 240.0.0.0/4, is multicast.
        ("240.0.0.0/4", "240.0.0.0", None),
        (
            "240.0.0.0/4 (1 above multicast)",
            "240.0.0.1",
            Some("223.255.255.255"),
        ),
        ("240.0.0.0/4 (high end)", "255.255.255.254", None),
        ("255.255.255.255", "255.255.255.255", None),
        ("::/128", "::", None),
        ("::1/128", "::1", None),
        ("::/96 (IPv4-compatible)", "::8.8.8.8", Some("::1:0:0")),
        (
            "::ffff:0:0/96 (mapped, private)",
            "::ffff:127.0.0.1",
            Some("::ffff:8.8.8.8"),
        ),
        (
            "::ffff:0:0/96 (mapped, benchmarking)",
            "::ffff:198.18.0.1",
            Some("::ffff:198.20.0.1"),
        ),
        (
            "64:ff9b::/96 (NAT64, private)",
            "64:ff9b::10.0.0.1",
            Some("64:ff9b::8.8.8.8"),
        ),
        (
            "64:ff9b::/96 (NAT64, reserved)",
            "64:ff9b::240.0.0.1",
            Some("64:ff9b::1.1.1.1"),
        ),
        (
            "64:ff9b:1::/48",
            "64:ff9b:1::8.8.8.8",
            Some("64:ff9b:2::8.8.8.8"),
        ),
        (
            "64:ff9b:1::/48 (high end)",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            Some("64:ff9b:0:ffff::1"),
        ),
        ("2002::/16 (6to4)", "2002:c0a8:101::1", Some("2003::1")),
        (
            "2002::/16 (low end)",
            "2002::",
            Some("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ),
        ("fc00::/7", "fd00::1", Some("fe00::1")),
        (
            "fc00::/7 (low end)",
            "fc00::",
            Some("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ),
        ("fe80::/10", "febf:ffff::1", Some("fe7f:ffff::1")),
        // fec0::/10 sits between fe80::/10 and ff00::/8: both neighbours
        // are refused for their own reasons.
        ("fec0::/10 (site-local)", "fec0::1", None),
        (
            "fec0::/10 (high end)",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            None,
        ),
        ("ff00::/8", "ff02::1", None),
    ];

    #[test]
    fn refuses_every_special_range_and_nothing_next_to_it() {
        for (range, inside, outside) in RANGES {
            let ip: IpAddr = inside.parse().expect("test input");
            assert!(non_public(ip).is_some(), "{range}: {ip} allowed");
            if let Some(outside) = outside {
                let ip: IpAddr = outside.parse().expect("test input");
                assert_eq!(non_public(ip), None, "{range}: {ip} refused");
            }
        }
        for public in [
            "8.8.8.8",
            "2606:4700::1111",
            "2001:db9::1",
            "::ffff:1.1.1.1",
        ] {
            let ip: IpAddr = public.parse().expect("test input");
            assert_eq!(non_public(ip), None, "{ip}");
        }
        assert!(refusal("127.0.0.1".parse().expect("test input"), true).is_none());
        let r = refusal("127.0.0.1".parse().expect("test input"), false).expect("test input");
        assert!(r.contains("loopback") && r.contains("allow_private"), "{r}");
        let r = refusal("64:ff9b::a00:1".parse().expect("test input"), false).expect("test input");
        assert!(r.contains("a private address"), "{r}");
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
