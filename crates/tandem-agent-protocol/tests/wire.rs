//! The wire format: what goes over the network, byte for byte where it matters.

use serde_json::json;
use tandem_agent_protocol::inventory::{Package, PackagesSection, SystemSection, UpdatesSection};
use tandem_agent_protocol::{
    CheckinRequest, CheckinResponse, DiskUsage, EnrollRequest, EnrollResponse, Heartbeat,
    Inventory, InventoryReport, Message, MessageBody, NotCollected, Problem, SectionName,
};

fn heartbeat() -> Heartbeat {
    Heartbeat {
        uptime_seconds: 3600,
        cpu_percent: Some(12.5),
        memory_total_bytes: 8 << 30,
        memory_available_bytes: 6 << 30,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        load1: 0.5,
        load5: 0.25,
        load15: 0.125,
        disks: vec![DiskUsage {
            mount: "/".into(),
            filesystem: "ext4".into(),
            total_bytes: 100 << 30,
            free_bytes: 40 << 30,
        }],
    }
}

fn inventory() -> Inventory {
    Inventory {
        system: Some(SystemSection {
            os_family: "linux".into(),
            distribution_id: Some("debian".into()),
            distribution: Some("Debian GNU/Linux".into()),
            distribution_version: Some("12".into()),
            hostname: Some("web-1".into()),
            reboot_required: Some(false),
            ..SystemSection::default()
        }),
        packages: Some(PackagesSection {
            packages: vec![Package {
                name: "openssl".into(),
                version: "3.0.11-1~deb12u2".into(),
                arch: Some("amd64".into()),
                manager: "dpkg".into(),
            }],
        }),
        not_collected: vec![
            NotCollected::new("hardware", "unsupported OS"),
            NotCollected::new(
                "system.fqdn",
                "no domain name in the host name or /etc/hosts",
            ),
        ],
        ..Inventory::default()
    }
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_string(value).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn checkin_request_round_trips_with_both_kinds() {
    let request = CheckinRequest {
        protocol: 1,
        messages: vec![
            Message {
                seq: 7,
                collected_at: "2025-01-02T03:04:05Z".into(),
                body: MessageBody::Heartbeat(heartbeat()),
            },
            Message {
                seq: 9,
                collected_at: "2025-01-02T03:05:00Z".into(),
                body: MessageBody::Inventory(InventoryReport {
                    full: true,
                    sections: inventory(),
                }),
            },
        ],
    };
    assert_eq!(round_trip(&request), request);
}

#[test]
fn message_kind_is_an_inline_tag() {
    let message = Message {
        seq: 1,
        collected_at: "2025-01-02T03:04:05Z".into(),
        body: MessageBody::Heartbeat(heartbeat()),
    };
    let value = serde_json::to_value(&message).unwrap();
    assert_eq!(value["body"]["kind"], "heartbeat");
    assert_eq!(value["body"]["uptime_seconds"], 3600);
    let inventory = MessageBody::Inventory(InventoryReport {
        full: false,
        sections: Inventory::default(),
    });
    let value = serde_json::to_value(&inventory).unwrap();
    assert_eq!(value["kind"], "inventory");
    assert_eq!(value["full"], false);
}

#[test]
fn enroll_round_trips() {
    let request = EnrollRequest {
        protocol: 1,
        token: "tok".into(),
        public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        hostname: "web-1".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
    };
    assert_eq!(round_trip(&request), request);
    let response = EnrollResponse {
        agent_id: "0190c3d2-0000-7000-8000-000000000000".into(),
        heartbeat_seconds: 60,
        inventory_seconds: 3600,
        server_time: "2025-01-02T03:04:05Z".into(),
    };
    assert_eq!(round_trip(&response), response);
}

#[test]
fn responses_ignore_unknown_fields_and_default_want_full() {
    let response: CheckinResponse = serde_json::from_value(json!({
        "acked_through": 42,
        "heartbeat_seconds": 60,
        "inventory_seconds": 3600,
        "a_field_from_a_newer_server": {"x": 1}
    }))
    .unwrap();
    assert_eq!(response.acked_through, 42);
    assert!(!response.want_full_inventory);
}

#[test]
fn problem_reads_a_minimal_and_a_full_document() {
    let minimal: Problem = serde_json::from_value(json!({"code": "clock_skew"})).unwrap();
    assert_eq!(minimal.code, "clock_skew");
    let full: Problem = serde_json::from_value(json!({
        "type": "urn:tandem:problem:rate_limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "slow down",
        "code": "rate_limited",
        "request_id": "r1"
    }))
    .unwrap();
    assert_eq!(full.status, Some(429));
    assert_eq!(
        full.type_uri.as_deref(),
        Some("urn:tandem:problem:rate_limited")
    );
}

#[test]
fn a_change_report_replaces_only_what_it_reports() {
    let mut copy = inventory();
    let mut delta = Inventory {
        updates: Some(UpdatesSection {
            manager: "apt".into(),
            security_count: 0,
            checked_at: "2025-01-02T04:00:00Z".into(),
            ..UpdatesSection::default()
        }),
        not_collected: vec![NotCollected::new("packages", "permission denied")],
        ..Inventory::default()
    };
    copy.apply(&InventoryReport {
        full: false,
        sections: delta.clone(),
    });
    assert!(copy.system.is_some(), "unreported section kept");
    assert!(copy.updates.is_some(), "reported section added");
    assert!(
        copy.packages.is_none(),
        "section reported as not collected cleared"
    );
    assert!(
        copy.reports(SectionName::Hardware),
        "old gap of an unreported section kept"
    );
    assert_eq!(copy.not_collected_in(SectionName::Packages).count(), 1);

    delta.retain_sections(|s| s == SectionName::Updates);
    assert!(delta.not_collected.is_empty());
    assert!(delta.has(SectionName::Updates));
}

#[test]
fn a_full_report_replaces_everything() {
    let mut copy = inventory();
    copy.apply(&InventoryReport {
        full: true,
        sections: Inventory::default(),
    });
    assert_eq!(copy, Inventory::default());
}

#[test]
fn section_names_round_trip_their_wire_names() {
    for name in SectionName::ALL {
        assert_eq!(SectionName::parse(name.as_str()), Some(name));
        assert_eq!(
            serde_json::to_value(name).unwrap(),
            serde_json::Value::String(name.as_str().into())
        );
    }
    assert_eq!(
        NotCollected::new("hardware.serial", "x").section(),
        Some(SectionName::Hardware)
    );
    assert_eq!(NotCollected::new("nonsense", "x").section(), None);
}
