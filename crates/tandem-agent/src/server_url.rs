//! The server's base URL, and the one rule about transport: https, or plain http only to
//! this machine's loopback addresses (for development and tests).

use std::fmt;
use std::net::IpAddr;

use anyhow::{bail, Context};

/// A parsed `http(s)://host[:port][/base]` URL the agent talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    https: bool,
    host: String,
    port: Option<u16>,
    base_path: String,
}

impl ServerUrl {
    /// Parses a base URL; refuses anything but http and https, user info, queries and
    /// fragments, and plain http to a host that is not loopback.
    pub fn parse(text: &str) -> anyhow::Result<ServerUrl> {
        let url = Self::parse_any(text)?;
        if !url.https && !url.is_loopback() {
            bail!(
                "refusing plain http to {}: use https, or http only to a loopback address \
                 (127.0.0.1, [::1], localhost)",
                url.host
            );
        }
        Ok(url)
    }

    fn parse_any(text: &str) -> anyhow::Result<ServerUrl> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .with_context(|| format!("server URL {text:?} has no scheme (https://…)"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            other => bail!("server URL scheme {other:?} is not supported: use https"),
        };
        if rest.contains(['?', '#']) {
            bail!("server URL {text:?} must not have a query or fragment");
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            bail!("server URL {text:?} must not contain user information");
        }
        let (host, port) = split_host_port(authority)
            .with_context(|| format!("server URL {text:?} has no valid host"))?;
        Ok(ServerUrl {
            https,
            host,
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// True for https.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// True when the host is `localhost` or a loopback IP address.
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.is_loopback(),
            Ok(IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Err(_) => false,
        }
    }

    /// A warning to show when the transport is plain http, if it is.
    pub fn plain_http_warning(&self) -> Option<String> {
        (!self.https).then(|| {
            format!("warning: plain http to {self}: traffic is not encrypted (loopback only)")
        })
    }

    /// The port connected to: the one given, else 443 for https and 80 for http.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// `host[:port]` as a `Host` header carries it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The request target of a protocol path: the base path, then the path.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }

    /// The full URL of a protocol path such as `/agent/v1/checkin`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base_path)
    }
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(ServerUrl::parse("https://tandem.example.test").is_ok());
        assert!(ServerUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(ServerUrl::parse("http://127.9.9.9:8080").is_ok());
        assert!(ServerUrl::parse("http://[::1]:8080/").is_ok());
        assert!(ServerUrl::parse("http://LOCALHOST:1").is_ok());
        assert!(ServerUrl::parse("http://192.168.1.10:8080").is_err());
        assert!(ServerUrl::parse("http://tandem.example.test").is_err());
        assert!(ServerUrl::parse("ftp://127.0.0.1").is_err());
        assert!(ServerUrl::parse("https://user@host").is_err());
        assert!(ServerUrl::parse("https://host/?q=1").is_err());
        assert!(ServerUrl::parse("https://host:0").is_err());
        assert!(ServerUrl::parse("https://host:99999").is_err());
        assert!(ServerUrl::parse("https://").is_err());
        assert!(ServerUrl::parse("tandem.example.test").is_err());
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let url = ServerUrl::parse("https://Example.test:8443/tandem/").unwrap();
        assert_eq!(
            url.endpoint("/agent/v1/checkin"),
            "https://example.test:8443/tandem/agent/v1/checkin"
        );
        let v6 = ServerUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(v6.endpoint("/x"), "http://[::1]:9000/x");
        assert!(v6.plain_http_warning().is_some());
        assert!(url.plain_http_warning().is_none());
    }
}
