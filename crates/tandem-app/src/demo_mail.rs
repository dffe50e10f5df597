//! The demo's mail chapter (issue #5): each demo client's support address, set by the
//! client's own IT admin through the ordinary use case (so the audit trail shows who), and
//! one person's mail preferences. The demo server sends no mail unless `[mail]` is set up;
//! nothing here pretends a message was sent.

use crate::{App, MailPreference, Result};
use tandem_domain::mail::MailEvent;

impl App {
    /// Support addresses for the demo clients (`slugs`: each client's slug and id), and the
    /// preferences of a Harbor Point engineer who does not want reply mail.
    pub(crate) async fn seed_demo_mail(
        &self,
        slugs: &[(String, tandem_domain::ClientId)],
    ) -> Result<()> {
        let id = |s: &str| {
            slugs
                .iter()
                .find(|(slug, _)| slug == s)
                .map(|(_, id)| *id)
                .ok_or(crate::Error::NotFound("demo client"))
        };
        let dana = self.demo_actor("dana.whitfield").await?;
        self.set_support_address(
            &dana,
            id("harbor-point-engineering")?,
            Some("help@harborpoint-eng.test"),
        )
        .await?;
        let luis = self.demo_actor("luis.ortega").await?;
        self.set_support_address(
            &luis,
            id("bayside-family-medicine")?,
            Some("it-help@baysidefamilymed.test"),
        )
        .await?;
        let emily = self.demo_actor("emily.park").await?;
        self.set_mail_preferences(
            &emily,
            &[MailPreference {
                event: MailEvent::TicketReply,
                enabled: false,
                label: String::new(),
            }],
        )
        .await?;
        Ok(())
    }
}
