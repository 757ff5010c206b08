//! `[webserver] bind`: the address the web server listens on, an IP address or a host name with
//! a port. A name is resolved when the server starts listening, not when the configuration is
//! read, so a CLI command on another machine does not need it to resolve.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Where the web server listens: `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`, `localhost:8080`
/// or `weir.internal:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddress {
    host: BindHost,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BindHost {
    Ip(IpAddr),
    Name(String),
}

/// Why a `bind` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a host:port address such as 127.0.0.1:8080, [::1]:8080 or localhost:8080")]
pub struct InvalidBind;

impl FromStr for BindAddress {
    type Err = InvalidBind;

    fn from_str(text: &str) -> Result<BindAddress, InvalidBind> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(BindAddress {
                host: BindHost::Ip(address.ip()),
                port: address.port(),
            });
        }
        let (name, port) = text.rsplit_once(':').ok_or(InvalidBind)?;
        let port: u16 = port.parse().map_err(|_| InvalidBind)?;
        if !is_host_name(name) {
            return Err(InvalidBind);
        }
        Ok(BindAddress {
            host: BindHost::Name(name.to_ascii_lowercase()),
            port,
        })
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. An IP
/// address that failed to parse (`127.0.0.256`, an IPv6 address without brackets) is not one.
fn is_host_name(name: &str) -> bool {
    let label = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (1..=253).contains(&name.len())
        && name.split('.').all(label)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|byte| byte.is_ascii_digit()))
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            BindHost::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            BindHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl BindAddress {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server listens on loopback only: a loopback IP address, or `localhost` and
    /// `*.localhost`, names that always mean this machine (RFC 6761; [`Self::resolve`] refuses
    /// one that resolves elsewhere). Any other name may point anywhere, so it counts as not
    /// loopback, whatever it resolves to today.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            BindHost::Ip(ip) => ip.is_loopback(),
            BindHost::Name(name) => is_loopback_name(name),
        }
    }

    /// The socket addresses to listen on, IPv4 first (so `localhost` listens where most
    /// clients try first and every client falls back to). A loopback name that resolves to
    /// another address is refused: the checks that rely on loopback would be wrong.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let name = match &self.host {
            BindHost::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, self.port)]),
            BindHost::Name(name) => name,
        };
        let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), self.port)).await?.collect();
        addresses.sort_by_key(|address| address.is_ipv6());
        addresses.dedup();
        if is_loopback_name(name)
            && let Some(elsewhere) = addresses.iter().find(|address| !address.ip().is_loopback())
        {
            return Err(std::io::Error::other(format!(
                "{name} resolves to {}, not a loopback address: fix the system's hosts file, or bind to 127.0.0.1",
                elsewhere.ip()
            )));
        }
        if addresses.is_empty() {
            return Err(std::io::Error::other(format!("{name} resolves to no address")));
        }
        Ok(addresses)
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_parse_and_print_back() {
        let cases = [
            ("127.0.0.1:8080", "127.0.0.1:8080", true),
            ("[::1]:9000", "[::1]:9000", true),
            ("0.0.0.0:8080", "0.0.0.0:8080", false),
            ("localhost:8080", "localhost:8080", true),
            ("LocalHost:8080", "localhost:8080", true),
            ("weir.localhost:80", "weir.localhost:80", true),
            ("weir.internal:8080", "weir.internal:8080", false),
            ("my-host:0", "my-host:0", false),
        ];
        for (text, shown, loopback) in cases {
            let bind: BindAddress = text.parse().unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(bind.to_string(), shown, "{text}");
            assert_eq!(bind.is_loopback(), loopback, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "localhost",
            "localhost:",
            "localhost:65536",
            ":8080",
            "127.0.0.256:8080",
            "::1:8080",
            "-weir:8080",
            "weir..internal:8080",
            "we ir:8080",
            "http://localhost:8080",
        ] {
            assert_eq!(text.parse::<BindAddress>(), Err(InvalidBind), "{text}");
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_addresses_ipv4_first() {
        let bind: BindAddress = "localhost:8080".parse().unwrap();
        let addresses = bind.resolve().await.unwrap();
        assert!(
            addresses.iter().all(|address| address.ip().is_loopback()),
            "{addresses:?}"
        );
        assert_eq!(
            addresses[0],
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            "{addresses:?}"
        );
        let ip: BindAddress = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            ip.resolve().await.unwrap(),
            vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]
        );
    }
}
