//! The demo: Crestline Managed Services and two clients, as told in the demo story.
//!
//! Seeding is idempotent: a data folder is seeded once, and later runs only report the
//! logins. Every record it makes is marked as demo data.

use crate::{principal_of, Actor, App, Error, NewClient, NewSite, NewUser, Result};
use tandem_domain::authz::TechnicianAccess;
use tandem_domain::scope::{Agreement, Assignment, Calendar, Party, Raci};
use tandem_domain::ClientId;
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
    Person {
        username: "morgan.reyes",
        name: "Morgan Reyes",
        role: Role::ProviderAdmin,
        client: None,
        who: "Crestline admin, account lead and vCIO",
        tz: "America/New_York",
    },
    Person {
        username: "sam.okafor",
        name: "Sam Okafor",
        role: Role::ProviderTechnician,
        client: None,
        who: "Crestline technician (security)",
        tz: "America/New_York",
    },
    Person {
        username: "jordan.lee",
        name: "Jordan Lee",
        role: Role::ProviderTechnician,
        client: None,
        who: "Crestline technician (infrastructure)",
        tz: "America/New_York",
    },
    Person {
        username: "dana.whitfield",
        name: "Dana Whitfield",
        role: Role::ClientItAdmin,
        client: Some("harbor-point-engineering"),
        who: "Harbor Point's internal IT person",
        tz: "America/New_York",
    },
    Person {
        username: "robert.harlan",
        name: "Robert Harlan",
        role: Role::ClientViewer,
        client: Some("harbor-point-engineering"),
        who: "Harbor Point's owner (read-only)",
        tz: "America/New_York",
    },
    Person {
        username: "emily.park",
        name: "Emily Park",
        role: Role::EndUser,
        client: Some("harbor-point-engineering"),
        who: "Harbor Point engineer (end user)",
        tz: "America/New_York",
    },
    Person {
        username: "casey.ledger",
        name: "Casey Ledger",
        role: Role::Auditor,
        client: Some("harbor-point-engineering"),
        who: "CMMC assessor for Harbor Point (read-only, 30 days)",
        tz: "America/New_York",
    },
    Person {
        username: "luis.ortega",
        name: "Luis Ortega",
        role: Role::ClientItAdmin,
        client: Some("bayside-family-medicine"),
        who: "Bayside's IT admin",
        tz: "America/New_York",
    },
    Person {
        username: "tara.nguyen",
        name: "Tara Nguyen",
        role: Role::ClientItAdmin,
        client: Some("bayside-family-medicine"),
        who: "Bayside's part-time IT assistant (Phoenix)",
        tz: "America/Phoenix",
    },
    Person {
        username: "maya.brooks",
        name: "Dr. Maya Brooks",
        role: Role::ClientViewer,
        client: Some("bayside-family-medicine"),
        who: "Bayside's managing physician (read-only)",
        tz: "America/New_York",
    },
    Person {
        username: "kevin.shah",
        name: "Kevin Shah",
        role: Role::EndUser,
        client: Some("bayside-family-medicine"),
        who: "Bayside front-desk coordinator (end user)",
        tz: "America/Phoenix",
    },
];

/// (site name, time zone, address)
type DemoSite = (&'static str, &'static str, &'static str);

const CLIENTS: &[(&str, &[DemoSite])] = &[
    (
        "Harbor Point Engineering",
        &[(
            "Norfolk office",
            "America/New_York",
            "210 Harbor Point Way, Norfolk, VA (fictional)",
        )],
    ),
    (
        "Bayside Family Medicine",
        &[
            (
                "Virginia Beach clinic",
                "America/New_York",
                "48 Seaside Ave, Virginia Beach, VA (fictional)",
            ),
            (
                "Phoenix clinic",
                "America/Phoenix",
                "1900 Desert Bloom Rd, Phoenix, AZ (fictional)",
            ),
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
                return Ok(DemoReport {
                    created: false,
                    password,
                    logins: logins(),
                });
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
            let c = self
                .create_client(
                    &sys,
                    NewClient {
                        name: name.to_string(),
                    },
                    true,
                )
                .await?;
            for (site, tz, address) in *sites {
                self.create_site(
                    &sys,
                    c.id,
                    NewSite {
                        name: site.to_string(),
                        time_zone: tz.to_string(),
                        address: address.to_string(),
                    },
                )
                .await?;
            }
            slugs.push((c.slug.clone(), c.id));
        }
        for p in PEOPLE {
            let client_id = p.client.map(|s| {
                slugs
                    .iter()
                    .find(|(slug, _)| slug == s)
                    .map(|(_, id)| *id)
                    .expect("demo client exists")
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
        self.seed_demo_agreements(&slugs).await?;
        let sites = self
            .list_sites(&sys, None, tandem_store::Page::new(0, 100))
            .await?
            .items;
        let site = |name: &str| {
            sites
                .iter()
                .find(|s| s.name == name)
                .map(|s| (s.client_id, s.id))
                .expect("demo site exists")
        };
        let (hp, norfolk) = site("Norfolk office");
        let (bfm, vb) = site("Virginia Beach clinic");
        let (_, phx) = site("Phoenix clinic");
        self.seed_demo_fleet(
            "morgan.reyes",
            &[
                (
                    hp,
                    norfolk,
                    "hp",
                    40,
                    &["hp-fs-01", "hp-lic-01", "hp-nas-01"],
                ),
                (bfm, vb, "bfm-vb", 76, &["bfm-vb-pms-01", "bfm-vb-fs-01"]),
                (bfm, phx, "bfm-phx", 52, &[]),
            ],
        )
        .await?;
        self.seed_demo_tickets().await?;
        // tickets2: tags, watchers, a related pair, a merged duplicate, a breached ticket.
        self.seed_demo_ticket_data().await?;
        // Mail (issue #5): support addresses, as each client's IT admin sets them.
        self.seed_demo_mail(&slugs).await?;
        self.seed_demo_alerts(hp).await?; // alerts (issue #6)
                                          // on-call (issue #6): the rotation, the disk page and the morning handoff.
        self.seed_demo_oncall(hp).await?;
        // ingest (issue #6): Harbor Point's Alertmanager, through an integration token.
        self.seed_demo_ingest("dana.whitfield", hp).await?;
        // Maintenance windows (issue #6): the weekly patch window and a past firmware window.
        self.seed_demo_maintenance(hp).await?;
        let mut w = self.store.write().await?;
        settings::set(&mut w, "provider.name", PROVIDER_NAME).await?;
        settings::set(&mut w, "demo.password", &password).await?;
        settings::set(&mut w, "demo.seeded", &Timestamp::now().to_rfc3339()).await?;
        w.commit().await?;
        Ok(DemoReport {
            created: true,
            password,
            logins: logins(),
        })
    }
}

fn parties(p: &[Party]) -> std::collections::BTreeSet<Party> {
    p.iter().copied().collect()
}

/// One row of a demo agreement: (domain, responsible, accountable, business owner, after-hours
/// owner, provider contact, notes).
type Row = (
    &'static str,
    &'static [Party],
    Party,
    Party,
    Party,
    &'static str,
    &'static str,
);

fn agreement(
    internal_contact: &str,
    internal_escalation: &[&str],
    internal_cal: Calendar,
    rows: &[Row],
) -> Agreement {
    Agreement {
        provider_calendar: Calendar::weekdays("America/New_York", 8 * 60, 18 * 60),
        internal_calendar: internal_cal,
        assignments: rows
            .iter()
            .map(
                |(domain, r, a, business, after, provider_contact, notes)| Assignment {
                    domain: domain.to_string(),
                    raci: Raci {
                        responsible: parties(r),
                        accountable: parties(&[*a]),
                        consulted: parties(&[a.other()]),
                        informed: parties(&[Party::Internal, Party::Provider]),
                    },
                    business_hours_owner: *business,
                    after_hours_owner: *after,
                    internal_contact: Some(internal_contact.to_string()),
                    provider_contact: Some(provider_contact.to_string()),
                    internal_escalation: internal_escalation
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    provider_escalation: vec![
                        "Crestline on-call technician".into(),
                        "Morgan Reyes (account lead)".into(),
                    ],
                    notes: notes.to_string(),
                },
            )
            .collect(),
    }
}

use Party::{Internal as I, Provider as P};

fn harbor_point_agreement() -> Agreement {
    let rows: &[Row] = &[
        ("helpdesk", &[I], I, I, P, "Crestline service desk", "Dana knows every user and the CAD software; after 17:00 Crestline takes urgent tickets."),
        ("onsite_hardware", &[I], I, I, P, "Jordan Lee", "Dana is on site daily."),
        ("vendors", &[I], I, I, P, "Morgan Reyes", "Dana owns the CAD vendor and the ISP relationships."),
        ("cloud_m365", &[I, P], P, I, P, "Jordan Lee", "Shared: Dana makes user changes, Crestline administers the tenant and answers for it."),
        ("security_monitoring", &[P], P, P, P, "Sam Okafor", "Dana is stretched on security: Crestline runs EDR and triage."),
        ("patching", &[P], P, P, P, "Jordan Lee", "Patching lapsed before Crestline took it over."),
        ("backup", &[P], P, P, P, "Jordan Lee", "Includes the NAS and the two Linux servers."),
        ("after_hours_monitoring", &[P], P, P, P, "Crestline on-call technician", ""),
        ("compliance", &[P, I], P, P, P, "Morgan Reyes", "NIST SP 800-171 / CMMC Level 2 for the DoD subcontracts."),
        ("network", &[P], P, P, P, "Jordan Lee", ""),
        ("vcio", &[P], P, P, P, "Morgan Reyes", ""),
        ("incident_response", &[P, I], P, P, P, "Sam Okafor", "Dana has never run a ransomware response; Crestline leads, Dana handles people and site."),
    ];
    agreement(
        "Dana Whitfield",
        &["Dana Whitfield", "Robert Harlan (owner)"],
        Calendar::weekdays("America/New_York", 7 * 60 + 30, 17 * 60),
        rows,
    )
}

fn bayside_agreement(m365_owner: Party) -> Agreement {
    let m365_note = if m365_owner == P {
        "Moved to Crestline in version 2, at Luis's request: licences, conditional access and mailboxes."
    } else {
        "Luis administers Microsoft 365 today and wants help with it."
    };
    let rows: Vec<Row> = vec![
        (
            "helpdesk",
            &[I, P],
            I,
            I,
            P,
            "Crestline service desk",
            "After hours Crestline covers clinical systems only (EHR, e-prescribing, phones).",
        ),
        (
            "onsite_hardware",
            &[I],
            I,
            I,
            I,
            "Jordan Lee",
            "Luis in Virginia Beach, Tara in Phoenix.",
        ),
        (
            "vendors",
            &[I],
            I,
            I,
            P,
            "Morgan Reyes",
            "Luis owns the practice-management system vendor.",
        ),
        (
            "cloud_m365",
            if m365_owner == P { &[P] } else { &[I] },
            m365_owner,
            m365_owner,
            P,
            "Jordan Lee",
            m365_note,
        ),
        ("security_monitoring", &[P], P, P, P, "Sam Okafor", ""),
        ("patching", &[P], P, P, P, "Jordan Lee", ""),
        ("backup", &[P], P, P, P, "Jordan Lee", ""),
        (
            "after_hours_monitoring",
            &[P],
            P,
            P,
            P,
            "Crestline on-call technician",
            "",
        ),
        (
            "compliance",
            &[P, I],
            P,
            P,
            P,
            "Morgan Reyes",
            "HIPAA Security Rule; CSF 2.0 for the board.",
        ),
        (
            "network",
            &[P],
            P,
            P,
            P,
            "Jordan Lee",
            "Two sites joined by VPN.",
        ),
        ("vcio", &[P], P, P, P, "Morgan Reyes", ""),
        ("incident_response", &[P, I], P, P, P, "Sam Okafor", ""),
    ];
    agreement(
        "Luis Ortega",
        &["Luis Ortega", "Tara Nguyen", "Dr. Maya Brooks"],
        Calendar::weekdays("America/New_York", 7 * 60, 18 * 60),
        &rows,
    )
}

impl App {
    pub(crate) async fn demo_actor(&self, username: &str) -> Result<Actor> {
        let users = self.all_users_console().await?;
        let u = users
            .iter()
            .find(|u| u.username == username)
            .ok_or(Error::NotFound("demo user"))?;
        Ok(Actor::person(principal_of(u), None))
    }

    /// Each client's agreement, signed by both sides through the ordinary workflow.
    async fn seed_demo_agreements(&self, slugs: &[(String, ClientId)]) -> Result<()> {
        let id = |s: &str| {
            slugs
                .iter()
                .find(|(slug, _)| slug == s)
                .map(|(_, id)| *id)
                .ok_or(Error::NotFound("demo client"))
        };
        let morgan = self.demo_actor("morgan.reyes").await?;
        let dana = self.demo_actor("dana.whitfield").await?;
        let luis = self.demo_actor("luis.ortega").await?;
        let all_warnings = |f: Vec<tandem_domain::scope::Finding>| {
            f.into_iter().map(|f| f.key()).collect::<Vec<_>>()
        };

        // Harbor Point: Crestline proposes, Dana accepts.
        let hp = id("harbor-point-engineering")?;
        let v = self.start_draft(&morgan, hp).await?;
        let (_, findings) = self
            .save_draft(&morgan, hp, v.number, harbor_point_agreement())
            .await?;
        self.propose(&morgan, hp, v.number, None, &all_warnings(findings))
            .await?;
        self.decide(
            &dana,
            hp,
            v.number,
            true,
            Some("Matches what we agreed at onboarding.".into()),
        )
        .await?;

        // Bayside: version 1, then Luis proposes moving Microsoft 365 to Crestline.
        let bay = id("bayside-family-medicine")?;
        let v1 = self.start_draft(&morgan, bay).await?;
        let (_, findings) = self
            .save_draft(&morgan, bay, v1.number, bayside_agreement(I))
            .await?;
        self.propose(&morgan, bay, v1.number, None, &all_warnings(findings))
            .await?;
        self.decide(&luis, bay, v1.number, true, None).await?;
        let v2 = self.start_draft(&luis, bay).await?;
        let (_, findings) = self
            .save_draft(&luis, bay, v2.number, bayside_agreement(P))
            .await?;
        self.propose(&luis, bay, v2.number, None, &all_warnings(findings))
            .await?;
        self.decide(
            &morgan,
            bay,
            v2.number,
            true,
            Some("Agreed: Crestline takes Microsoft 365 from today.".into()),
        )
        .await?;
        Ok(())
    }
}

impl App {
    /// The helpdesk chapter: internal IT works the everyday tickets; a suspicious sign-in is
    /// handed to the provider with a reason; a security alert goes straight to the provider.
    async fn seed_demo_tickets(&self) -> Result<()> {
        use crate::NewTicket;
        use tandem_domain::helpdesk::{Impact, Status, Urgency};
        use tandem_domain::scope::Party;
        let emily = self.demo_actor("emily.park").await?;
        let dana = self.demo_actor("dana.whitfield").await?;
        let sam = self.demo_actor("sam.okafor").await?;
        let kevin = self.demo_actor("kevin.shah").await?;
        let luis = self.demo_actor("luis.ortega").await?;
        let open = |subject: &str, description: &str, domain: &str, impact, urgency| NewTicket {
            client_id: None,
            site_id: None,
            requester_id: None,
            subject: subject.into(),
            description: description.into(),
            domain: Some(domain.into()),
            impact: Some(impact),
            urgency: Some(urgency),
            endpoint_ids: Vec::new(),
        };
        // Harbor Point: everyday work for internal IT.
        let printer = self
            .create_ticket(
                &emily,
                open(
                    "The second-floor plotter jams on A1 sheets",
                    "Every large drawing since this morning; small sheets are fine.",
                    "helpdesk",
                    Impact::Department,
                    Urgency::Normal,
                ),
            )
            .await?;
        // Attachments (issue #5): Emily's photo of the panel, Dana's spooler log for the IT sides.
        let panel = crate::demo_attachments::plotter_panel_png();
        self.demo_attach(
            &emily,
            printer.id,
            "This is what the panel shows every time.",
            false,
            &[("plotter-panel.png", &panel)],
        )
        .await?;
        let log = crate::demo_attachments::spooler_log();
        self.demo_attach(
            &dana,
            printer.id,
            "Spooler log from PRINT-01: only A1 jobs jam, always at roller 2, and the rollers are past their service count.",
            true,
            &[("print01-spooler.log", log.as_bytes())],
        )
        .await?;
        self.reply(
            &dana,
            printer.id,
            "On my way up with a new roller kit.",
            false,
        )
        .await?;
        let reset = self
            .create_ticket(
                &emily,
                open(
                    "Locked out after the password change",
                    "It says my account is locked.",
                    "helpdesk",
                    Impact::Person,
                    Urgency::High,
                ),
            )
            .await?;
        self.reply(
            &dana,
            reset.id,
            "Unlocked — try again now, and set up the authenticator app when asked.",
            false,
        )
        .await?;
        self.set_ticket_status(&dana, reset.id, Status::Resolved)
            .await?;
        // A suspicious sign-in: opened by the engineer, handed to Crestline with a reason.
        let login = self
            .create_ticket(
                &emily,
                open(
                    "Sign-in alert from a country I have never been to",
                    "Microsoft says someone signed in from abroad at 03:12.",
                    "helpdesk",
                    Impact::Person,
                    Urgency::Critical,
                ),
            )
            .await?;
        self.reply(&dana, login.id, "Looks like a compromised password; the account may have been used. Crestline runs our security monitoring.", true).await?;
        // (After hours the agreement already gives the helpdesk to Crestline.)
        if login.owner == Party::Internal {
            self.hand_off(&dana, login.id, Party::Provider, "Possible account compromise — security monitoring and incident response are Crestline's under the agreement").await?;
        }
        self.assign_ticket(&sam, login.id, sam.principal.as_ref().map(|p| p.user_id))
            .await?;
        self.reply(&sam, login.id, "Sessions revoked and the password reset; we are checking the mailbox rules now. Please don't use the old password anywhere.", false).await?;
        let signins = crate::demo_attachments::signin_csv();
        self.demo_attach(
            &sam,
            login.id,
            "Sign-in log excerpt from the identity provider (the 03:12 session created an inbox rule).",
            true,
            &[("signin-log-excerpt.csv", signins.as_bytes())],
        )
        .await?;
        // Bayside: the front desk's ticket for internal IT, and an urgent one for the provider.
        self.create_ticket(
            &kevin,
            open(
                "Check-in kiosk printer out of labels",
                "Phoenix front desk.",
                "onsite_hardware",
                Impact::Person,
                Urgency::Normal,
            ),
        )
        .await?;
        self.create_ticket(
            &luis,
            open(
                "Shared mailbox for referrals stopped receiving mail",
                "Nothing since 09:40; senders get no bounce.",
                "cloud_m365",
                Impact::Department,
                Urgency::High,
            ),
        )
        .await?;
        Ok(())
    }
}
