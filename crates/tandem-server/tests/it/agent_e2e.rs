//! The real agent against the real server: `tandem-agent enroll` and `run --once` as
//! processes, collecting this machine's inventory and delivering it over HTTP; then the
//! server goes away, the agent keeps collecting into its outbox, and when the server is
//! back everything arrives once. Runs on every backend.

use crate::common::{agent, agent_binary, bearer, run, Cred, TestApp};
use reqwest::Method;
use std::path::Path;
use std::sync::Arc;
use tandem_domain::authz::Capability;

fn set_server(config: &Path, url: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server =") {
                replaced += 1;
                format!("server = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one server line in {text}");
    std::fs::write(config, lines.join("\n") + "\n").unwrap();
}

async fn endpoints(t: &TestApp, cred: &Cred) -> Vec<serde_json::Value> {
    let r = t.send(t.api(Method::GET, "/api/v1/endpoints", cred)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enrolls_reports_and_delivers_what_it_queued_while_the_server_was_away() {
    let bin = agent_binary();
    run(move |t: Arc<TestApp>| {
        let bin = bin.clone();
        async move {
            assert!(bin.exists());
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("agent.toml");
            let outbox = dir.path().join("outbox.db");
            let (_, secret) = t.enrollment_token(&t.w.it_a, &t.w.site_a, Some(1)).await;
            let (ok, out) = agent(
                &config,
                &[
                    "enroll",
                    "--server",
                    &t.base,
                    "--token",
                    &secret,
                    "--outbox",
                    outbox.to_str().unwrap(),
                ],
            )
            .await;
            assert!(ok, "enroll: {out}");
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&config).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "the config holds the private key");

            let (ok, out) = agent(&config, &["run", "--once"]).await;
            assert!(ok, "first run: {out}");
            let cred = bearer(&t, &t.w.it_a, &[Capability::EndpointsRead]).await;
            let list = endpoints(&t, &cred).await;
            assert_eq!(list.len(), 1, "{list:?}");
            let e = &list[0];
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
            assert_eq!(e["hostname"], host.trim());
            assert_eq!(e["presence"], "online");
            let id = e["id"].as_str().unwrap().to_string();
            let r = t
                .send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &cred))
                .await;
            let d = r.json();
            let packages = d["inventory"]["packages"]["packages"]
                .as_array()
                .map_or(0, Vec::len);
            assert!(
                packages > 50,
                "this Debian machine's packages arrived: {packages}"
            );
            assert!(d["heartbeat"]["memory_total_bytes"].as_u64().unwrap() > 0);
            let seq_after_first = last_seq(&t, &id).await;
            assert!(seq_after_first >= 2, "heartbeat and inventory acknowledged");

            // The server is unreachable: the agent collects anyway and keeps it.
            set_server(&config, "http://127.0.0.1:9");
            let (ok, out) = agent(&config, &["run", "--once"]).await;
            assert!(!ok, "a run that could not deliver says so: {out}");
            let (_, status) = agent(&config, &["status"]).await;
            assert!(
                !status.contains("— 0 messages"),
                "queued while away: {status}"
            );

            // Back: everything queued arrives, once.
            set_server(&config, &t.base);
            let (ok, out) = agent(&config, &["run", "--once"]).await;
            assert!(ok, "run after the outage: {out}");
            let (_, status) = agent(&config, &["status"]).await;
            assert!(
                status.contains("— 0 messages"),
                "the outbox is empty: {status}"
            );
            let seq = last_seq(&t, &id).await;
            assert!(
                seq >= seq_after_first + 4,
                "both runs' messages were acknowledged: {seq_after_first} → {seq}"
            );
            // Nothing twice: the same machine's repeated inventories make no timeline entries.
            let r = t
                .send(t.api(
                    Method::GET,
                    &format!("/api/v1/endpoints/{id}/events"),
                    &cred,
                ))
                .await;
            let events = r.json()["items"].as_array().unwrap().clone();
            assert!(
                events.iter().all(|e| e["kind"] != "software_installed"),
                "no change was invented by a replay: {events:?}"
            );
        }
    })
    .await;
}

async fn last_seq(t: &TestApp, id: &str) -> u64 {
    let mut r = t.app.store().read().await.unwrap();
    tandem_store::endpoints::agent(&mut r, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .last_seq
}

/// `tandem-agent simulate` against the real server: endpoints enroll and send inventories
/// through the agent's client, then heartbeats go over the simulator's own connections (one
/// thread, plain HTTP/1.1, the session MAC) — and every one is accepted and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_heartbeats_are_accepted_and_stored() {
    let bin = agent_binary();
    run(move |t: Arc<TestApp>| {
        let bin = bin.clone();
        async move {
            let (_, secret) = t.enrollment_token(&t.w.it_a, &t.w.site_a, Some(5)).await;
            let base = t.base.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(bin)
                    .args(["simulate", "--count", "5", "--server", &base])
                    .args(["--duration", "5", "--concurrency", "3", "--compress", "30"])
                    .env("TANDEM_AGENT_TOKEN", secret)
                    .output()
                    .expect("the simulator runs")
            })
            .await
            .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("over 3 connections"), "{text}");
            assert!(text.contains("failures: 0"), "{text}");
            // Sessions were opened with the inventories: no heartbeat needed the agent's
            // client, so every one went over the simulator's own connections.
            assert!(!text.contains("through the agent's client"), "{text}");
            let beats: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("heartbeat check-ins: "))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no heartbeat line in {text}"));
            // 5 endpoints at one heartbeat every 2 s for the ~4 s after enrolling.
            assert!(beats >= 5, "{text}");

            let cred = bearer(&t, &t.w.it_a, &[Capability::EndpointsRead]).await;
            let list = endpoints(&t, &cred).await;
            assert_eq!(list.len(), 5, "{list:?}");
            // Metrics samples come only from heartbeats: all of them were stored.
            let mut stored = 0;
            for e in &list {
                let id = e["id"].as_str().unwrap();
                let r = t
                    .send(t.api(
                        Method::GET,
                        &format!("/api/v1/endpoints/{id}/metrics?range=24h"),
                        &cred,
                    ))
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
                stored += r.json()["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["samples"].as_u64().unwrap())
                    .sum::<u64>();
            }
            assert_eq!(stored, beats, "every acknowledged heartbeat is stored once");
        }
    })
    .await;
}
