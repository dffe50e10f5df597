//! The demo's ingest chapter (issue #6), marked as demo like the rest of the story: Harbor
//! Point's internal IT connects their Prometheus Alertmanager to Tandem with an integration
//! token, and Alertmanager has already reported a failed backup on the NAS — ingested through
//! the same use case real senders reach, so it is routed by the agreement (backup is the
//! provider's) and matched to the `hp-nas-01` endpoint. The token's secret is not kept: nobody
//! can post with the demo's token.

use crate::{App, NewIntegrationToken, Result};
use serde_json::json;
use tandem_domain::ClientId;

impl App {
    /// Makes the demo's integration token for `client` as `admin`, and ingests one firing
    /// Alertmanager alert through it.
    pub(crate) async fn seed_demo_ingest(&self, admin: &str, client: ClientId) -> Result<()> {
        let actor = self.demo_actor(admin).await?;
        let (token, _secret) = self
            .create_integration_token(
                &actor,
                client,
                NewIntegrationToken {
                    label: "Prometheus, Norfolk office (demo)".into(),
                    default_domain: "backup".into(),
                    ticket: Default::default(),
                },
            )
            .await?;
        let started = tandem_domain::Timestamp::now().plus_seconds(-40 * 60);
        let body = json!({
            "version": "4", "status": "firing", "receiver": "tandem",
            "groupKey": "{}:{alertname=\"BackupJobFailed\"}", "truncatedAlerts": 0,
            "groupLabels": {"alertname": "BackupJobFailed"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://prometheus.harborpoint.test:9093",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "BackupJobFailed", "instance": "hp-nas-01:9100",
                           "job": "node", "severity": "critical", "tandem_domain": "backup"},
                "annotations": {"summary": "Nightly backup of the project share failed on hp-nas-01",
                                "description": "restic exited with status 1: repository locked (demo)"},
                "startsAt": started.to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.harborpoint.test:9090/graph",
                "fingerprint": "d3m0b4ckup0001"
            }]
        });
        self.ingest_alertmanager(&token, None, body.to_string().as_bytes())
            .await?;
        Ok(())
    }
}
