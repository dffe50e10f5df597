//! The demo's on-call chapter (demo data): Crestline's night and weekend rotation across its
//! two technicians, the escalation policies of both sides at Harbor Point, a disk page that
//! goes to the provider's on-call technician, and the morning shift handoff at Harbor Point
//! that lists it for Dana, who acknowledges it. Everything goes through the ordinary use cases
//! as the story's people; the handoff instant is the agreement's own (the last 07:30 start of
//! Harbor Point's business hours).

use crate::oncall::{NewPage, NewSchedule, PolicyInput};
use crate::{Actor, App, Error, Result};
use tandem_domain::oncall::{
    Layer, Level, PolicyRules, Restriction, ScheduleRules, Severity, Target, TurnLength,
};
use tandem_domain::scope::{CompiledAgreement, Party};
use tandem_domain::{ClientId, Timestamp, UserId};

impl App {
    async fn demo_user_id(&self, username: &str) -> Result<UserId> {
        self.all_users_console()
            .await?
            .into_iter()
            .find(|u| u.username == username)
            .map(|u| u.id)
            .ok_or(Error::NotFound("demo user"))
    }

    /// Seeds the on-call chapter for Harbor Point (`hp`).
    pub(crate) async fn seed_demo_oncall(&self, hp: ClientId) -> Result<()> {
        let morgan = self.demo_actor("morgan.reyes").await?;
        let sam = self.demo_actor("sam.okafor").await?;
        let dana = self.demo_actor("dana.whitfield").await?;
        let (sam_id, jordan_id, morgan_id, dana_id) = (
            self.demo_user_id("sam.okafor").await?,
            self.demo_user_id("jordan.lee").await?,
            self.demo_user_id("morgan.reyes").await?,
            self.demo_user_id("dana.whitfield").await?,
        );
        // Weekly turns from a Monday: weeknights 17:00–07:30, and whole weekends.
        let start: jiff::civil::DateTime = "2026-01-05T17:00"
            .parse()
            .map_err(|_| Error::Internal("demo start".into()))?;
        let rotation = |name: &str, r: Restriction| Layer {
            name: name.into(),
            users: vec![sam_id, jordan_id],
            start,
            turn: TurnLength::Weekly,
            restriction: Some(r),
        };
        let schedule = self
            .create_schedule(
                &morgan,
                NewSchedule {
                    client_id: None,
                    name: "Crestline nights and weekends".into(),
                    rules: ScheduleRules {
                        time_zone: "America/New_York".into(),
                        layers: vec![
                            rotation(
                                "Weeknights",
                                Restriction {
                                    days: vec![0, 1, 2, 3, 4],
                                    start_minute: 17 * 60,
                                    end_minute: 7 * 60 + 30,
                                },
                            ),
                            rotation(
                                "Weekends",
                                Restriction {
                                    days: vec![5, 6],
                                    start_minute: 0,
                                    end_minute: 0,
                                },
                            ),
                        ],
                        overrides: vec![],
                    },
                },
            )
            .await?;
        self.put_policy(
            &morgan,
            PolicyInput {
                client_id: None,
                name: "Crestline after hours".into(),
                rules: PolicyRules {
                    levels: vec![
                        Level {
                            targets: vec![Target::Schedule {
                                schedule_id: schedule.id,
                            }],
                            wait_minutes: 15,
                        },
                        Level {
                            targets: vec![Target::User { user_id: morgan_id }],
                            wait_minutes: 15,
                        },
                    ],
                    repeat: 1,
                    then_other_side: false,
                },
            },
        )
        .await?;
        self.put_policy(
            &dana,
            PolicyInput {
                client_id: Some(hp),
                name: "Harbor Point IT".into(),
                rules: PolicyRules {
                    levels: vec![Level {
                        targets: vec![Target::User { user_id: dana_id }],
                        wait_minutes: 30,
                    }],
                    repeat: 0,
                    then_other_side: false,
                },
            },
        )
        .await?;
        // The disk page: after-hours monitoring is Crestline's around the clock.
        let page = self
            .open_page(
                &Actor::system(),
                NewPage {
                    client_id: hp,
                    domain: "after_hours_monitoring".into(),
                    dedup_key: "disk:hp-fs-01:D".into(),
                    summary: "Disk D: on hp-fs-01 is 91% full".into(),
                    severity: Severity::Critical,
                    link: Some("/endpoints".into()),
                },
            )
            .await?;
        self.acknowledge_page(&sam, page.page.id).await?;
        // The morning handoff: the last start of Harbor Point's business hours (07:30).
        let now = Timestamp::now();
        let v = self
            .version_in_force(&Actor::system(), hp, now)
            .await?
            .ok_or(Error::NotFound("Harbor Point agreement"))?;
        let compiled = CompiledAgreement::new(&v.content)
            .map_err(|e| Error::Internal(format!("demo agreement: {e}")))?;
        let morning = tandem_domain::oncall::handovers(
            &v.content,
            &compiled,
            now.plus_seconds(-8 * 86_400),
            now,
        )
        .into_iter()
        .rfind(|h| h.to == Party::Internal);
        if let Some(h) = morning {
            self.record_handoff(hp, &h, now).await?;
            let list = self
                .list_handoffs(&dana, &Default::default(), tandem_store::Page::new(0, 10))
                .await?;
            if let Some(rec) = list.items.iter().find(|r| r.at == h.at) {
                self.add_handoff_note(
                    &sam,
                    rec.id,
                    "hp-fs-01 D: filled with CAD autosave files overnight; I cleared the temp folder to 91%. Please ask the CAD vendor about the autosave location.",
                )
                .await?;
                self.acknowledge_handoff(&dana, rec.id).await?;
            }
        }
        Ok(())
    }
}
