//! The demo: Crestline Managed Services and two clients, as told in the demo story.
//!
//! Seeding is idempotent: a data folder is seeded once, and later runs only report the
//! logins. Every record it makes is marked as demo data.

use crate::{Actor, App, Error, NewClient, NewSite, NewUser, Result};
use tandem_domain::authz::TechnicianAccess;
use tandem_domain::{Role, Timestamp};
use tandem_store::{directory as dir, settings};

/// A login the demo prints.
#[derive(Clone, Debug)]
pub struct DemoLogin {
    /// Sign-in name.
    pub username: String,
    /// What they are in the story.
    pub who: String,
    /// Whether they will be asked to enrol an authenticator at first sign-in.
    pub mfa: bool,
}

/// What the demo made (or found already made).
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Whether this run created the data.
    pub created: bool,
    /// The password every demo login shares.
    pub password: String,
    /// The logins.
    pub logins: Vec<DemoLogin>,
}

const PROVIDER_NAME: &str = "Crestline Managed Services";

struct Person {
    username: &'static str,
    name: &'static str,
    role: Role,
    client: Option<&'static str>,
    who: &'static str,
    tz: &'static str,
}

const PEOPLE: &[Person] = &[
    Person { username: "morgan.reyes", name: "Morgan Reyes", role: Role::ProviderAdmin, client: None, who: "Crestline admin, account lead and vCIO", tz: "America/New_York" },
    Person { username: "sam.okafor", name: "Sam Okafor", role: Role::ProviderTechnician, client: None, who: "Crestline technician (security)", tz: "America/New_York" },
    Person { username: "jordan.lee", name: "Jordan Lee", role: Role::ProviderTechnician, client: None, who: "Crestline technician (infrastructure)", tz: "America/New_York" },
    Person { username: "dana.whitfield", name: "Dana Whitfield", role: Role::ClientItAdmin, client: Some("harbor-point-engineering"), who: "Harbor Point's internal IT person", tz: "America/New_York" },
    Person { username: "robert.harlan", name: "Robert Harlan", role: Role::ClientViewer, client: Some("harbor-point-engineering"), who: "Harbor Point's owner (read-only)", tz: "America/New_York" },
    Person { username: "emily.park", name: "Emily Park", role: Role::EndUser, client: Some("harbor-point-engineering"), who: "Harbor Point engineer (end user)", tz: "America/New_York" },
    Person { username: "casey.ledger", name: "Casey Ledger", role: Role::Auditor, client: Some("harbor-point-engineering"), who: "CMMC assessor for Harbor Point (read-only, 30 days)", tz: "America/New_York" },
    Person { username: "luis.ortega", name: "Luis Ortega", role: Role::ClientItAdmin, client: Some("bayside-family-medicine"), who: "Bayside's IT admin", tz: "America/New_York" },
    Person { username: "tara.nguyen", name: "Tara Nguyen", role: Role::ClientItAdmin, client: Some("bayside-family-medicine"), who: "Bayside's part-time IT assistant (Phoenix)", tz: "America/Phoenix" },
    Person { username: "maya.brooks", name: "Dr. Maya Brooks", role: Role::ClientViewer, client: Some("bayside-family-medicine"), who: "Bayside's managing physician (read-only)", tz: "America/New_York" },
    Person { username: "kevin.shah", name: "Kevin Shah", role: Role::EndUser, client: Some("bayside-family-medicine"), who: "Bayside front-desk coordinator (end user)", tz: "America/Phoenix" },
];

const CLIENTS: &[(&str, &[(&str, &str, &str)])] = &[
    (
        "Harbor Point Engineering",
        &[("Norfolk office", "America/New_York", "210 Harbor Point Way, Norfolk, VA (fictional)")],
    ),
    (
        "Bayside Family Medicine",
        &[
            ("Virginia Beach clinic", "America/New_York", "48 Seaside Ave, Virginia Beach, VA (fictional)"),
            ("Phoenix clinic", "America/Phoenix", "1900 Desert Bloom Rd, Phoenix, AZ (fictional)"),
        ],
    ),
];

fn logins() -> Vec<DemoLogin> {
    PEOPLE
        .iter()
        .map(|p| DemoLogin {
            username: p.username.to_string(),
            who: p.who.to_string(),
            mfa: p.role.mfa_required_by_default(),
        })
        .collect()
}

impl App {
    /// Whether this installation holds demo data.
    pub async fn is_demo(&self) -> Result<bool> {
        let mut r = self.store.read().await?;
        Ok(settings::get(&mut r, "demo.seeded").await?.is_some())
    }

    /// The provider's name, as shown in the header.
    pub async fn provider_name(&self) -> Result<String> {
        let mut r = self.store.read().await?;
        Ok(settings::get(&mut r, "provider.name")
            .await?
            .unwrap_or_else(|| "Your provider".to_string()))
    }

    /// Seeds the demo once; later calls report what is there.
    pub async fn seed_demo(&self) -> Result<DemoReport> {
        {
            let mut r = self.store.read().await?;
            if let Some(password) = settings::get(&mut r, "demo.password").await? {
                return Ok(DemoReport { created: false, password, logins: logins() });
            }
            if !dir::all_users_unscoped(&mut r).await?.is_empty() {
                return Err(Error::Conflict(
                    "this data folder already holds a real installation; run the demo with another --data folder".into(),
                ));
            }
        }
        let sys = Actor::system();
        let password = format!("demo-{}", &crate::new_secret(6));
        let mut slugs = Vec::new();
        for (name, sites) in CLIENTS {
            let c = self.create_client(&sys, NewClient { name: name.to_string() }, true).await?;
            for (site, tz, address) in *sites {
                self.create_site(
                    &sys,
                    c.id,
                    NewSite { name: site.to_string(), time_zone: tz.to_string(), address: address.to_string() },
                )
                .await?;
            }
            slugs.push((c.slug.clone(), c.id));
        }
        for p in PEOPLE {
            let client_id = p.client.map(|s| {
                slugs.iter().find(|(slug, _)| slug == s).map(|(_, id)| *id).expect("demo client exists")
            });
            let domain = match p.client {
                None => "crestline-msp.test",
                Some("harbor-point-engineering") => "harborpoint-eng.test",
                Some(_) => "baysidefamilymed.test",
            };
            self.create_user(
                &sys,
                NewUser {
                    client_id,
                    username: p.username.to_string(),
                    email: format!("{}@{domain}", p.username),
                    display_name: p.name.to_string(),
                    role: p.role,
                    password: password.clone(),
                    time_zone: Some(p.tz.to_string()),
                    technician: (p.role == Role::ProviderTechnician).then(|| TechnicianAccess {
                        all_clients: true,
                        ..Default::default()
                    }),
                    access_expires_at: (p.role == Role::Auditor)
                        .then(|| Timestamp::now().plus_seconds(30 * 86_400)),
                },
            )
            .await?;
        }
        let mut w = self.store.write().await?;
        settings::set(&mut w, "provider.name", PROVIDER_NAME).await?;
        settings::set(&mut w, "demo.password", &password).await?;
        settings::set(&mut w, "demo.seeded", &Timestamp::now().to_rfc3339()).await?;
        w.commit().await?;
        Ok(DemoReport { created: true, password, logins: logins() })
    }
}
