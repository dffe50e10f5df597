//! The Linux collectors against the machine the tests run on.
#![cfg(target_os = "linux")]

use std::path::Path;

use tandem_agent::collect::linux::LinuxCollector;
use tandem_agent::collect::{put_updates, Collector};
use tandem_agent_protocol::{Inventory, SectionName};

fn inventory() -> Inventory {
    LinuxCollector::new().inventory()
}

#[test]
fn the_system_section_identifies_this_machine() {
    let inventory = inventory();
    let system = inventory.system.as_ref().expect("system section");
    assert_eq!(system.os_family, "linux");
    let machine_id = system.machine_id.as_deref().expect("a machine id");
    assert!(machine_id.len() >= 32 && machine_id.chars().all(|c| c.is_ascii_hexdigit()));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(system.hostname.as_deref(), Some(hostname.trim()));
    assert!(system.kernel.is_some() && system.arch.is_some() && system.boot_time.is_some());
    if Path::new("/etc/os-release").exists() {
        assert!(system.distribution.is_some() && system.distribution_id.is_some());
    }
}

#[test]
fn packages_come_from_the_real_dpkg_status() {
    if !Path::new("/var/lib/dpkg/status").exists() {
        eprintln!("no dpkg on this machine; skipped");
        return;
    }
    let inventory = inventory();
    let packages = &inventory
        .packages
        .as_ref()
        .expect("packages section")
        .packages;
    assert!(packages.len() > 50, "{} packages", packages.len());
    let dpkg = packages
        .iter()
        .find(|p| p.name == "dpkg")
        .expect("dpkg lists itself");
    assert_eq!(dpkg.manager, "dpkg");
    assert!(!dpkg.version.is_empty());
}

#[test]
fn listening_ports_include_a_fresh_listener_with_its_process() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inventory = inventory();
    let ports = &inventory.ports.as_ref().expect("ports section").listening;
    let ours = ports
        .iter()
        .find(|p| p.port == port && p.local_address == "127.0.0.1")
        .expect("our listener is listed");
    assert_eq!(ours.pid, Some(std::process::id()));
    assert!(ours.process.is_some());
}

#[test]
fn hardware_network_and_users_are_read() {
    let inventory = inventory();
    let hardware = inventory.hardware.as_ref().unwrap();
    assert!(hardware.memory_bytes.unwrap() > 0);
    assert!(hardware.cpu_threads.unwrap() >= 1);
    assert!(hardware.filesystems.iter().any(|f| f.mount == "/"));
    let network = inventory.network.as_ref().unwrap();
    assert!(network.interfaces.iter().any(|i| i.name == "lo"));
    let users = inventory.users.as_ref().unwrap();
    assert!(users.users.iter().any(|u| u.name == "root" && u.uid == 0));
}

/// The agent's promise: nothing is silently missing.
#[test]
fn every_absent_section_and_value_is_explained() {
    let mut collector = LinuxCollector::new();
    let mut inventory = collector.inventory();
    put_updates(&mut inventory, collector.updates());
    for name in SectionName::ALL {
        assert!(
            inventory.reports(name),
            "section {} is neither present nor explained",
            name.as_str()
        );
    }
    let json = serde_json::to_value(&inventory).unwrap();
    for name in SectionName::ALL {
        let section = &json[name.as_str()];
        let Some(fields) = section.as_object() else {
            continue;
        };
        for (field, value) in fields {
            if value.is_null() {
                let path = format!("{}.{field}", name.as_str());
                assert!(
                    inventory.not_collected.iter().any(|g| g.field == path),
                    "{path} is null without a not_collected entry"
                );
            }
        }
    }
    for gap in &inventory.not_collected {
        assert!(gap.section().is_some(), "gap names no section: {gap:?}");
        assert!(!gap.reason.is_empty());
    }
}

#[test]
fn two_heartbeats_give_a_cpu_share_and_cost_little() {
    let mut collector = LinuxCollector::new();
    let first = collector.heartbeat().unwrap();
    assert_eq!(first.cpu_percent, None);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let second = collector.heartbeat().unwrap();
    if let Some(cpu) = second.cpu_percent {
        assert!((0.0..=100.0).contains(&cpu));
    }
    assert!(second.memory_available_bytes <= second.memory_total_bytes);
}

#[test]
fn the_fingerprint_is_stable_and_sees_a_new_listener() {
    let mut collector = LinuxCollector::new();
    let before = collector.fingerprint();
    assert_eq!(before, collector.fingerprint());
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert_ne!(before, collector.fingerprint());
}

#[test]
fn collect_prints_the_inventory_as_json() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tandem-agent"))
        .args(["collect", "--no-updates"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inventory: Inventory = serde_json::from_slice(&output.stdout).unwrap();
    assert!(inventory.system.is_some());
    assert!(inventory.updates.is_none());
}
