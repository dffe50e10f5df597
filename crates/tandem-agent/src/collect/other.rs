//! The collector for operating systems the agent does not support yet: every section is
//! reported as not collected, so the server shows the machine honestly as unknown.

use tandem_agent_protocol::inventory::{SectionName, UpdatesSection};
use tandem_agent_protocol::{Heartbeat, Inventory, NotCollected};

use super::Collector;

const REASON: &str = "unsupported OS";

/// Reports nothing, with the reason.
#[derive(Debug, Default)]
pub struct UnsupportedCollector;

impl Collector for UnsupportedCollector {
    fn heartbeat(&mut self) -> anyhow::Result<Heartbeat> {
        anyhow::bail!("heartbeats are not collected on this OS ({REASON})")
    }

    fn inventory(&mut self) -> Inventory {
        Inventory {
            not_collected: SectionName::ALL
                .into_iter()
                .filter(|s| *s != SectionName::Updates)
                .map(|s| NotCollected::new(s.as_str(), REASON))
                .collect(),
            ..Inventory::default()
        }
    }

    fn updates(&mut self) -> Result<UpdatesSection, Vec<NotCollected>> {
        Err(vec![NotCollected::new("updates", REASON)])
    }

    fn fingerprint(&mut self) -> String {
        String::new()
    }
}
