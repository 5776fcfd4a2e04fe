//! Checks of what probes point at: host:port addresses, http URLs, DNS servers, names and
//! expected answers. Pure functions of the text, so each is tested on its own.

use std::net::{IpAddr, SocketAddr};

use super::DNS_PORT;
use crate::scenario::echo;
use crate::scenario::DnsRecord;

const NOT_AN_IP: &str =
    "is not an IP address: the probe asks the server directly, so give its address, not its name";

/// Reads a dns probe's `server`: `ip:port`, `[ipv6]:port`, or an address alone (port 53).
pub(super) fn dns_server(server: &str) -> Result<SocketAddr, &'static str> {
    let address = match server.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            let bare = server
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(server);
            match bare.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, DNS_PORT),
                Err(_) => {
                    let host = server.rsplit_once(':').map(|(host, _)| {
                        host.strip_prefix('[')
                            .and_then(|h| h.strip_suffix(']'))
                            .unwrap_or(host)
                    });
                    return Err(match host.map(str::parse::<IpAddr>) {
                        Some(Ok(_)) => "has a port that is not a number from 1 to 65535",
                        _ if server.trim().is_empty() => "is empty",
                        // Resolving the server's own name would make the probe depend on
                        // another DNS server, which a fault may well be breaking.
                        _ => NOT_AN_IP,
                    });
                }
            }
        }
    };
    if address.port() == 0 {
        return Err("has port 0");
    }
    if address.ip().is_unspecified() {
        return Err("is the unspecified address, which no server answers from");
    }
    Ok(address)
}

/// Checks a dns probe's `query` is one DNS name (a trailing dot is allowed).
pub(super) fn check_dns_name(query: &str) -> Result<(), String> {
    let shown = echo::quoted(query);
    let bare = query.strip_suffix('.').unwrap_or(query);
    if bare.starts_with("*.") {
        return Err(format!(
            "`query` {shown} is a wildcard; a probe looks up one name"
        ));
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "`query` {shown} is an IP address; give the name to look up"
        ));
    }
    if !gameday_proto::fault::is_dns_pattern(bare)
        || hickory_proto::rr::Name::from_ascii(bare).is_err()
    {
        return Err(format!(
            "`query` {shown} is not a DNS name (labels of letters, digits, '-' and '_', \
             1 to 63 characters each, 253 in all, like \"api.internal\")"
        ));
    }
    Ok(())
}

/// Reads one `expect` entry of a dns probe: an address of the family `record` asks for (when
/// `record` itself is valid).
pub(super) fn expected_address(entry: &str, record: Option<DnsRecord>) -> Result<IpAddr, String> {
    let shown = echo::quoted(entry);
    let Ok(ip) = entry.parse::<IpAddr>() else {
        return Err(format!("`expect` entry {shown} is not an IP address"));
    };
    match record {
        Some(record) if !record.holds(&ip) => {
            let (family, other, fix) = match record {
                DnsRecord::A => ("IPv6", "IPv4", "AAAA"),
                DnsRecord::Aaaa => ("IPv4", "IPv6", "A"),
            };
            Err(format!(
                "`expect` entry {shown} is an {family} address, but {record} records hold \
                 {other} addresses (use record = \"{fix}\" for {family})"
            ))
        }
        _ => Ok(ip),
    }
}

/// Checks `url` is a plain-HTTP URL with a host, as the http probe reads it (`hyper::Uri`).
pub(super) fn check_url(url: &str) -> Result<(), String> {
    let shown = echo::quoted(url);
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err(format!(
            "https probes are not supported yet: use an http:// URL or a tcp probe (got {shown})"
        ));
    }
    if !url.starts_with("http://") {
        return Err(format!("`url` must start with http://, got {shown}"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`url` {shown} is not a valid URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!("`url` {shown} has no host"));
    };
    // Credentials written here would be copied into every report.
    if authority.as_str().contains('@') {
        return Err(format!(
            "`url` {shown} must not carry credentials (user@host)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`url` {shown} has no host"));
    }
    // `Uri` accepts any digits as a port, and the probe would then quietly fall back to port 80.
    let authority = authority.as_str();
    let port = match authority.rfind(']') {
        Some(end) => authority[end + 1..].strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(Ok(0)) => Err(format!("`url` {shown} has port 0")),
        Some(Err(_)) => Err(format!(
            "`url` {shown} has a port that is not a number from 1 to 65535"
        )),
    }
}

/// Checks `address` is `host:port` or `[ipv6]:port`, as a TCP connect resolves it.
pub(super) fn check_host_port(address: &str) -> Result<(), &'static str> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return match socket.port() {
            0 => Err("has port 0"),
            _ => Ok(()),
        };
    }
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed '['");
        };
        (host, after.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("looks like an IPv6 address without brackets");
            }
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if host.chars().any(char::is_whitespace) {
        return Err("has a space in the host");
    }
    match port.map(str::parse::<u16>) {
        None => Err("has no port"),
        Some(Ok(0)) => Err("has port 0"),
        Some(Ok(_)) => Ok(()),
        Some(Err(_)) => Err("has a port that is not a number from 1 to 65535"),
    }
}
