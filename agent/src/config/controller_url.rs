//! The `controller` URL: https only, a host, and a port in range, checked at start so that a
//! typo is a config error instead of a connect loop, and parsed once for everyone who dials it
//! or must spare it.

use std::fmt;

use serde::Deserialize;
use tonic::codegen::http::Uri;

/// The controller's URL, checked when the config is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ControllerUrl {
    text: String,
    uri: Uri,
}

impl ControllerUrl {
    /// Checks and parses `url`; the error is the message for the `controller` key.
    pub fn parse(url: &str) -> Result<ControllerUrl, String> {
        check(url)?;
        let uri = url
            .parse::<Uri>()
            .map_err(|e| format!("controller: not a valid URL ({e}): {url:?}"))?;
        Ok(ControllerUrl {
            text: url.to_string(),
            uri,
        })
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host name or address, without an IPv6 address's brackets.
    pub fn host(&self) -> &str {
        // `check` made sure there is a host.
        self.uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    /// The port, 443 when the URL names none.
    pub fn port(&self) -> u16 {
        self.uri.port_u16().unwrap_or(443)
    }
}

impl TryFrom<String> for ControllerUrl {
    type Error = String;
    fn try_from(url: String) -> Result<ControllerUrl, String> {
        ControllerUrl::parse(&url)
    }
}

impl fmt::Display for ControllerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks `url`; the error is the message for the `controller` key.
fn check(url: &str) -> Result<(), String> {
    const EXAMPLE: &str = "\"https://gameday.example:7443\"";
    if let Some(rest) = url.strip_prefix("http://") {
        return Err(format!(
            "controller: the controller speaks https only (mutual TLS); write \
             \"https://{rest}\" (found {url:?})"
        ));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!(
            "controller: expected an https:// URL like {EXAMPLE}, found {url:?}"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "controller: user names and passwords do not belong in the URL; the agent \
             authenticates with its certificate (found {url:?})"
        ));
    }
    let (host, port) = split_host_port(authority);
    if !valid_host(host) {
        return Err(format!(
            "controller: expected a host name or IP address after https://, like {EXAMPLE}, \
             found {url:?}"
        ));
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            Ok(n) => {
                return Err(format!(
                    "controller: port {n} is out of range; expected 1 to 65535 (found {url:?})"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "controller: port {port:?} is not a number; expected 1 to 65535 \
                     (found {url:?})"
                ))
            }
        }
    }
    tonic::transport::Endpoint::from_shared(url.to_string())
        .map(drop)
        .map_err(|e| format!("controller: not a valid URL ({e}): {url:?}"))
}

/// `host[:port]` or `[v6][:port]`; the host keeps its brackets.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// A DNS name or IPv4 address, or an IPv6 address in brackets.
fn valid_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check, ControllerUrl};

    #[test]
    fn parses_host_and_port_once() {
        let url = ControllerUrl::parse("https://[::1]:7443/").unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 7443));
        assert_eq!(url.to_string(), "https://[::1]:7443/");
        let url = ControllerUrl::parse("https://gameday.example").unwrap();
        assert_eq!((url.host(), url.port()), ("gameday.example", 443));
        assert!(ControllerUrl::parse("http://c:1").is_err());
    }

    #[test]
    fn accepts_names_addresses_and_default_ports() {
        for url in [
            "https://gameday.example:7443",
            "https://127.0.0.1:1",
            "https://[::1]:65535",
            "https://[::1]",
            "https://gameday.example",
            "https://gameday.example:7443/",
        ] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn refuses_ports_out_of_range() {
        assert_eq!(
            check("https://c:99999"),
            Err(
                "controller: port 99999 is out of range; expected 1 to 65535 \
                 (found \"https://c:99999\")"
                    .into()
            )
        );
        assert!(check("https://c:0").unwrap_err().contains("port 0 is out"));
        assert!(check("https://[::1]:70000")
            .unwrap_err()
            .contains("port 70000 is out"));
        assert!(check("https://c:x1").unwrap_err().contains("not a number"));
        assert!(check("https://c:").unwrap_err().contains("not a number"));
    }

    #[test]
    fn refuses_other_schemes_and_missing_hosts() {
        let err = check("http://c:7443").unwrap_err();
        assert!(
            err.starts_with("controller: the controller speaks https only"),
            "{err}"
        );
        assert!(err.contains("\"https://c:7443\""), "{err}");
        for url in [
            "c:7443",
            "grpc://c:7443",
            "https://",
            "https://:7443",
            "https://a b",
            "https://a:b:1",
            "https://[zz]:1",
        ] {
            assert!(check(url).is_err(), "{url}");
        }
        assert!(check("https://me:pw@c:7443")
            .unwrap_err()
            .contains("authenticates with its certificate"));
    }
}
