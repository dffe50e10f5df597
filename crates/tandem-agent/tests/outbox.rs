//! The outbox on a real SQLite file: durable, ordered, bounded, and acknowledged only as
//! far as the server said.

use tandem_agent::changes::{prepare, SectionHashes};
use tandem_agent::collect::Collector;
use tandem_agent::outbox::Outbox;
use tandem_agent::simulate::fleet::SyntheticHost;
use tandem_agent_protocol::{CheckinRequest, DiskUsage, Heartbeat, MessageBody, SectionName};

const AGENT: &str = "0190c3d2-0000-7000-8000-000000000001";

fn heartbeat(uptime: u64) -> Heartbeat {
    Heartbeat {
        uptime_seconds: uptime,
        cpu_percent: None,
        memory_total_bytes: 1,
        memory_available_bytes: 1,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        load1: 0.0,
        load5: 0.0,
        load15: 0.0,
        disks: vec![DiskUsage {
            mount: "/".into(),
            filesystem: "ext4".into(),
            total_bytes: 1,
            free_bytes: 1,
        }],
    }
}

fn full_inventory(outbox: &Outbox) -> tandem_agent::changes::PreparedReport {
    let inventory = SyntheticHost::new(3, 1).inventory();
    prepare(inventory, &outbox.acked_hashes().unwrap(), true).unwrap()
}

fn batch_seqs(outbox: &Outbox, max: usize) -> Vec<u64> {
    let batch = outbox.next_batch(max, 1 << 20).unwrap().unwrap();
    let request: CheckinRequest = serde_json::from_slice(&batch.body).unwrap();
    assert_eq!(request.protocol, 1);
    request.messages.iter().map(|m| m.seq).collect()
}

#[test]
fn messages_survive_reopening_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/outbox.db");
    let seqs: Vec<u64> = {
        let mut outbox = Outbox::open(&path, AGENT, 1 << 20).unwrap();
        (0..5)
            .map(|i| {
                outbox
                    .enqueue_heartbeat("2025-01-01T00:00:00Z", heartbeat(i))
                    .unwrap()
            })
            .collect()
    };
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {seqs:?}"
    );
    assert!(
        seqs[0] > 1_600_000_000_000_000,
        "numbering starts at the clock in microseconds"
    );

    let mut outbox = Outbox::open(&path, AGENT, 1 << 20).unwrap();
    assert_eq!(batch_seqs(&outbox, 100), seqs);
    assert_eq!(batch_seqs(&outbox, 2), seqs[..2]);
    let next = outbox
        .enqueue_heartbeat("2025-01-01T00:01:00Z", heartbeat(9))
        .unwrap();
    assert_eq!(next, seqs[4] + 1, "numbering continues after reopening");

    #[cfg(unix)]
    {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn acknowledgement_deletes_only_through_the_acknowledged_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("o.db"), AGENT, 1 << 20).unwrap();
    let seqs: Vec<u64> = (0..4)
        .map(|i| {
            outbox
                .enqueue_heartbeat("2025-01-01T00:00:00Z", heartbeat(i))
                .unwrap()
        })
        .collect();
    let outcome = outbox.acknowledge(seqs[1]).unwrap();
    assert_eq!(outcome.deleted, 2);
    assert_eq!(batch_seqs(&outbox, 100), seqs[2..]);
    // A repeated (stale) acknowledgement changes nothing.
    assert_eq!(outbox.acknowledge(seqs[0]).unwrap().deleted, 0);
    outbox.acknowledge(seqs[3]).unwrap();
    assert!(outbox.next_batch(100, 1 << 20).unwrap().is_none());
}

#[test]
fn a_server_ahead_of_us_moves_numbering_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("o.db"), AGENT, 1 << 20).unwrap();
    let first = outbox
        .enqueue_heartbeat("2025-01-01T00:00:00Z", heartbeat(1))
        .unwrap();
    outbox.acknowledge(first + 1000).unwrap();
    let next = outbox
        .enqueue_heartbeat("2025-01-01T00:00:00Z", heartbeat(2))
        .unwrap();
    assert_eq!(next, first + 1001);
}

#[test]
fn when_full_the_oldest_heartbeats_go_and_inventory_stays() {
    let dir = tempfile::tempdir().unwrap();
    let one = serde_json::to_string(&heartbeat(1)).unwrap().len() as u64 + 80;
    let mut outbox = Outbox::open(&dir.path().join("o.db"), AGENT, 1).unwrap();
    let inventory_seq = outbox
        .enqueue_inventory("2025-01-01T00:00:00Z", full_inventory(&outbox))
        .unwrap();
    // The bound is far below one inventory: it is kept anyway, alone.
    assert_eq!(batch_seqs(&outbox, 100), [inventory_seq]);

    let inventory_bytes = outbox.depth().unwrap().bytes;
    drop(outbox);
    let mut outbox =
        Outbox::open(&dir.path().join("o.db"), AGENT, inventory_bytes + 3 * one).unwrap();
    let beats: Vec<u64> = (0..10)
        .map(|i| {
            outbox
                .enqueue_heartbeat("2025-01-01T00:00:00Z", heartbeat(i))
                .unwrap()
        })
        .collect();
    let depth = outbox.depth().unwrap();
    assert_eq!(depth.inventories, 1);
    assert!(depth.heartbeats >= 2 && depth.heartbeats <= 3, "{depth:?}");
    assert!(depth.bytes <= inventory_bytes + 3 * one);
    let queued = batch_seqs(&outbox, 100);
    assert_eq!(queued[0], inventory_seq);
    assert_eq!(
        *queued.last().unwrap(),
        beats[9],
        "the newest heartbeat is kept"
    );
    assert!(!queued.contains(&beats[0]), "the oldest heartbeat went");
    assert_eq!(
        outbox
            .get("dropped_heartbeats")
            .unwrap()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        10 - depth.heartbeats
    );
}

#[test]
fn a_newer_inventory_supersedes_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("o.db"), AGENT, 1 << 24).unwrap();
    let first = outbox
        .enqueue_inventory("t1", full_inventory(&outbox))
        .unwrap();
    let beat = outbox.enqueue_heartbeat("t2", heartbeat(1)).unwrap();
    let second = outbox
        .enqueue_inventory("t3", full_inventory(&outbox))
        .unwrap();
    assert_eq!(
        outbox.queued().unwrap(),
        [(beat, "heartbeat".into()), (second, "inventory".into())]
    );
    assert!(second > first);
}

#[test]
fn full_first_then_only_changes_against_the_acknowledged_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("o.db"), AGENT, 1 << 24).unwrap();
    assert!(
        outbox.full_inventory_wanted().unwrap(),
        "a new agent owes a full inventory"
    );
    assert_eq!(outbox.acked_hashes().unwrap(), SectionHashes::new());

    let seq = outbox
        .enqueue_inventory("t1", full_inventory(&outbox))
        .unwrap();
    assert!(
        outbox.full_inventory_wanted().unwrap(),
        "still owed until acknowledged"
    );
    let outcome = outbox.acknowledge(seq).unwrap();
    assert!(outcome.full_inventory);
    assert!(!outbox.full_inventory_wanted().unwrap());
    let baseline = outbox.acked_hashes().unwrap();
    assert_eq!(baseline.len(), SectionName::ALL.len());

    let same = SyntheticHost::new(3, 1).inventory();
    assert!(prepare(same, &baseline, false).is_none(), "nothing changed");

    let mut changed = SyntheticHost::new(3, 1).inventory();
    changed.users.as_mut().unwrap().users.pop();
    let delta = prepare(changed, &baseline, false).unwrap();
    assert!(!delta.report.full);
    assert!(delta.report.sections.users.is_some());
    assert!(delta.report.sections.packages.is_none());
    let seq = outbox.enqueue_inventory("t2", delta.clone()).unwrap();
    let batch = outbox.next_batch(100, 1 << 24).unwrap().unwrap();
    let request: CheckinRequest = serde_json::from_slice(&batch.body).unwrap();
    assert!(matches!(&request.messages[0].body, MessageBody::Inventory(r) if !r.full));

    outbox.acknowledge(seq).unwrap();
    let reopened = Outbox::open(&dir.path().join("o.db"), AGENT, 1 << 24).unwrap();
    let new_baseline = reopened.acked_hashes().unwrap();
    assert_ne!(new_baseline, baseline);
    let mut again = SyntheticHost::new(3, 1).inventory();
    again.users.as_mut().unwrap().users.pop();
    assert!(
        prepare(again, &new_baseline, false).is_none(),
        "the acknowledged change is the new baseline"
    );

    reopened.want_full_inventory().unwrap();
    assert!(reopened.full_inventory_wanted().unwrap());
}

#[test]
fn a_different_agent_starts_with_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let mut outbox = Outbox::open(&path, AGENT, 1 << 20).unwrap();
    let seq = outbox
        .enqueue_inventory("t", full_inventory(&outbox))
        .unwrap();
    outbox.acknowledge(seq).unwrap();
    outbox.enqueue_heartbeat("t", heartbeat(1)).unwrap();
    drop(outbox);
    let other = Outbox::open(&path, "another-agent", 1 << 20).unwrap();
    assert_eq!(other.depth().unwrap().messages, 0);
    assert!(other.acked_hashes().unwrap().is_empty());
    assert!(other.full_inventory_wanted().unwrap());
}
