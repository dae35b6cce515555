//! IP addresses: parsed with `std::net`, written in canonical text form (RFC 5952 for IPv6),
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) written as IPv4.

use std::net::{IpAddr, SocketAddr};

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;

const KIND: SelectorKind = SelectorKind::IpAddress;

pub(crate) fn normalize(value: &str) -> Result<(String, String), SelectorError> {
    if value.contains('/') {
        return Err(SelectorError::invalid(KIND, "it is a network range (CIDR /n): send one address"));
    }
    if value.contains('%') {
        return Err(SelectorError::invalid(
            KIND,
            "it has an interface zone (%eth0), which only has a meaning on one machine: remove it",
        ));
    }
    let bare = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    let ip: IpAddr = match bare.parse() {
        Ok(ip) => ip,
        Err(_) if value.parse::<SocketAddr>().is_ok() => {
            return Err(SelectorError::invalid(KIND, "it has a port (:443): send the address alone"));
        }
        Err(_) => {
            return Err(SelectorError::invalid(
                KIND,
                "it is not an IPv4 address (four numbers 0 to 255 without leading zeros, such as 203.0.113.7) or an IPv6 address (such as 2001:db8::1)",
            ));
        }
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    Ok((String::new(), ip.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> String {
        match normalize(value) {
            Ok((_, v)) => v,
            Err(e) => panic!("{value:?}: {e}"),
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(ok("203.0.113.7"), "203.0.113.7");
        assert_eq!(ok("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
        assert_eq!(ok("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(ok("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(ok("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(ok("::FFFF:CB00:7107"), "203.0.113.7");
        // IPv4-compatible (deprecated) addresses are not IPv4-mapped and stay IPv6.
        assert_eq!(ok("::203.0.113.7"), "::cb00:7107");
        assert_eq!(ok("::1"), "::1");
    }

    #[test]
    fn bad_addresses() {
        for (v, hint) in [
            ("203.0.113.0/24", "range"),
            ("fe80::1%eth0", "zone"),
            ("203.0.113.7:443", "port"),
            ("[2001:db8::1]:443", "port"),
            ("203.0.113.256", "IPv4"),
            ("203.000.113.7", "IPv4"),
            ("203.0.113", "IPv4"),
            ("example.com", "IPv4"),
            ("2001:db8:::1", "IPv4"),
        ] {
            let e = normalize(v).expect_err(v);
            assert!(e.to_string().contains(hint), "{v}: {e}");
        }
    }
}
