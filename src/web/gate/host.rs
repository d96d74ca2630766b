//! Which `Host` a request may name (DNS rebinding), and where a plain-HTTP request is sent once
//! HTTPS is on. Pure apart from reading the kernel's hostname once.

use std::net::IpAddr;

/// Which `Host` values are this box (DNS rebinding: a page on `evil.example` that re-points its
/// name at the box's address sends `Host: evil.example`, which is refused).
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Accepted names besides IP literals and `localhost`: the box's hostname (and
    /// `<hostname>.local`, its mDNS name) and `[web] hostnames`, lower case, no trailing dot.
    pub names: Vec<String>,
    /// Accept any `Host` (only for embedding the server in tests of other things).
    pub any: bool,
}

impl HostPolicy {
    /// The box's hostname (from the kernel) plus `extra` names.
    pub fn for_box(extra: &[String]) -> Self {
        let mut names: Vec<String> = extra.iter().map(|n| normalise_name(n)).collect();
        if let Some(h) = system_hostname() {
            names.push(format!("{h}.local"));
            names.push(h);
        }
        names.retain(|n| !n.is_empty());
        Self { names, any: false }
    }

    /// True when `host` (a `Host` header value, port included or not) names this box.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host.trim();
        // `[v6]` or `[v6]:port`.
        if let Some(rest) = host.strip_prefix('[') {
            let Some((ip, tail)) = rest.split_once(']') else {
                return false;
            };
            return ip.parse::<std::net::Ipv6Addr>().is_ok() && valid_port_suffix(tail);
        }
        let (name, tail) = match host.rsplit_once(':') {
            Some((n, p)) => (n, format!(":{p}")),
            None => (host, String::new()),
        };
        if !valid_port_suffix(&tail) || name.is_empty() {
            return false;
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return true;
        }
        let name = normalise_name(name);
        name == "localhost" || self.names.contains(&name)
    }
}

fn valid_port_suffix(tail: &str) -> bool {
    match tail.strip_prefix(':') {
        None => tail.is_empty(),
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn normalise_name(n: &str) -> String {
    n.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The kernel's hostname (`uname -n`), lower case.
pub fn system_hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = normalise_name(&text);
    (!name.is_empty()).then_some(name)
}

/// Where a plain-HTTP request goes once HTTPS is on: the same host (as the client named it,
/// already checked by [`HostPolicy`]; else the address it connected to) and target, on the
/// HTTPS port.
pub fn https_location(host: Option<&str>, local: IpAddr, https_port: u16, target: &str) -> String {
    let name = match host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) if h.starts_with('[') => h.split_inclusive(']').next().unwrap_or(h).to_string(),
        Some(h) => h.rsplit_once(':').map_or(h, |(n, _)| n).to_string(),
        None => match local {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::head::tests::limits;

    #[test]
    fn host_policy() {
        let p = limits().hosts;
        for ok in [
            "10.0.0.5",
            "10.0.0.5:8080",
            "[::1]",
            "[fe80::1]:80",
            "localhost",
            "LOCALHOST:80",
            "cdrbox",
            "CDRBOX.",
            "calls.office.lan:443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "",
            ":80",
            "[::1",
            "[::1]x",
            "localhost.evil.example",
            "10.0.0.5:",
            "10.0.0.5:http",
            "1.2.3.4.5",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }
}
