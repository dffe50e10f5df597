//! The `network` section: interfaces from /sys/class/net, addresses from getifaddrs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use nix::ifaddrs::getifaddrs;
use tandem_agent_protocol::inventory::{
    AddressFamily, InterfaceAddress, NetworkInterface, NetworkSection,
};

use crate::collect::text;
use crate::collect::Gaps;

/// The `IFF_UP` bit of /sys/class/net/IF/flags.
const IFF_UP: u32 = 0x1;

/// Reads the network section; `None` when no interface list is readable.
pub fn collect(gaps: &mut Gaps) -> Option<NetworkSection> {
    let names = match interface_names() {
        Ok(names) => names,
        Err(reason) => {
            gaps.add("network", reason);
            return None;
        }
    };
    let mut addresses = match addresses_by_interface() {
        Ok(found) => found,
        Err(reason) => {
            gaps.add("network.interfaces.addresses", reason);
            BTreeMap::new()
        }
    };
    let interfaces = names
        .into_iter()
        .map(|name| {
            let mut addrs = addresses.remove(&name).unwrap_or_default();
            addrs.sort();
            interface(name, addrs)
        })
        .collect();
    Some(NetworkSection { interfaces })
}

fn interface_names() -> Result<Vec<String>, String> {
    let dir = Path::new("/sys/class/net");
    let entries = fs::read_dir(dir).map_err(|e| text::io_reason(dir, &e))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

fn interface(name: String, addresses: Vec<InterfaceAddress>) -> NetworkInterface {
    let base = Path::new("/sys/class/net").join(&name);
    let mac = text::read_value(base.join("address"))
        .ok()
        .filter(|m| m != "00:00:00:00:00:00");
    NetworkInterface {
        mac,
        mtu: text::read_value(base.join("mtu"))
            .ok()
            .and_then(|v| v.parse().ok()),
        up: text::read_value(base.join("flags"))
            .ok()
            .and_then(|v| parse_flags(&v))
            .map(|flags| flags & IFF_UP != 0),
        addresses,
        name,
    }
}

/// Parses a `0x1003`-style flags value.
pub fn parse_flags(value: &str) -> Option<u32> {
    u32::from_str_radix(value.trim().trim_start_matches("0x"), 16).ok()
}

fn addresses_by_interface() -> Result<BTreeMap<String, Vec<InterfaceAddress>>, String> {
    let mut found: BTreeMap<String, Vec<InterfaceAddress>> = BTreeMap::new();
    for entry in getifaddrs().map_err(|e| format!("getifaddrs: {e}"))? {
        let (Some(address), Some(mask)) = (entry.address, entry.netmask) else {
            continue;
        };
        let parsed = if let (Some(a), Some(m)) = (address.as_sockaddr_in(), mask.as_sockaddr_in()) {
            Some(InterfaceAddress {
                family: AddressFamily::Ipv4,
                address: a.ip().to_string(),
                prefix: u32::from(m.ip()).count_ones() as u8,
            })
        } else if let (Some(a), Some(m)) = (address.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            Some(InterfaceAddress {
                family: AddressFamily::Ipv6,
                address: a.ip().to_string(),
                prefix: u128::from(m.ip()).count_ones() as u8,
            })
        } else {
            None
        };
        if let Some(parsed) = parsed {
            found.entry(entry.interface_name).or_default().push(parsed);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_hex() {
        assert_eq!(parse_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_flags("0x9"), Some(9));
        assert_eq!(parse_flags("nonsense"), None);
    }

    #[test]
    fn loopback_has_its_address() {
        let mut gaps = Gaps::default();
        let section = collect(&mut gaps).unwrap();
        let lo = section.interfaces.iter().find(|i| i.name == "lo").unwrap();
        assert_eq!(lo.up, Some(true));
        assert!(lo
            .addresses
            .iter()
            .any(|a| a.address == "127.0.0.1" && a.prefix == 8));
    }
}
