//! The demo's files (issue #5): a screenshot of the plotter's error panel that Emily attaches
//! to her ticket, the print server's spooler log Dana adds as an internal note, and the
//! sign-in log excerpt Crestline keeps on the security ticket. The bytes are generated here
//! (a real PNG, real text) and go through the same upload use case as any browser's.

use crate::{Actor, App, AttachTarget, Result};
use tandem_domain::TicketId;

impl App {
    /// Attaches files to a ticket as `actor`, with an optional reply or note.
    pub(crate) async fn demo_attach(
        &self,
        actor: &Actor,
        ticket: TicketId,
        body: &str,
        internal: bool,
        files: &[(&str, &[u8])],
    ) -> Result<()> {
        let mut up = self.begin_upload(actor, ticket, "web").await?;
        for (name, bytes) in files {
            up.start_file(name, None).await?;
            for piece in bytes.chunks(64 * 1024) {
                up.write(piece).await?;
            }
            up.finish_file().await?;
        }
        up.commit(AttachTarget {
            body: body.to_string(),
            internal,
            event_id: None,
        })
        .await?;
        Ok(())
    }
}

/// A 480×270 "photo of the control panel": a title bar, a red error banner with lines of
/// "text", and the paper-path diagram's boxes — an uncompressed but valid PNG.
pub(crate) fn plotter_panel_png() -> Vec<u8> {
    let (w, h) = (480usize, 270usize);
    let mut px = vec![[0xe9u8, 0xeb, 0xee]; w * h];
    let mut rect = |x0: usize, y0: usize, x1: usize, y1: usize, c: [u8; 3]| {
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                px[y * w + x] = c;
            }
        }
    };
    rect(0, 0, 480, 34, [0x1f, 0x3a, 0x5f]); // title bar
    rect(12, 12, 150, 22, [0xdd, 0xe6, 0xf0]); // its "text"
    rect(40, 60, 440, 150, [0xc0, 0x39, 0x2b]); // error banner
    rect(60, 78, 300, 92, [0xff, 0xff, 0xff]); // "Paper jam — A1 roll"
    rect(60, 104, 400, 112, [0xf5, 0xd0, 0xcb]);
    rect(60, 122, 340, 130, [0xf5, 0xd0, 0xcb]);
    for (i, x) in [60usize, 170, 280].iter().enumerate() {
        let c = if i == 1 {
            [0xe6, 0x7e, 0x22]
        } else {
            [0x7f, 0x8c, 0x8d]
        };
        rect(*x, 180, x + 90, 240, c); // paper path: feed, roller (highlighted), cutter
    }
    rect(150, 206, 170, 214, [0x34, 0x49, 0x5e]);
    rect(260, 206, 280, 214, [0x34, 0x49, 0x5e]);
    let mut raw = Vec::with_capacity((w * 3 + 1) * h);
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend_from_slice(&px[y * w + x]);
        }
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of "stored" (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The print server's spooler log around the jams.
pub(crate) fn spooler_log() -> String {
    let mut s = String::from("# PRINT-01 spooler, 2nd floor plotter (HP DesignJet T830, PLOT-2)\n");
    let jobs = [
        ("A1", "site-plan-rev7.pdf", "jammed at roller 2"),
        ("A3", "floor-2-seating.pdf", "printed"),
        ("A1", "elevations-north.pdf", "jammed at roller 2"),
        ("A4", "invoice-2291.pdf", "printed"),
        ("A1", "site-plan-rev8.pdf", "jammed at roller 2"),
    ];
    for (i, (size, doc, outcome)) in jobs.iter().enumerate() {
        let minute = 5 + i * 11;
        s.push_str(&format!(
            "08:{minute:02}:14 job {} user=emily.park size={size} doc={doc} pages=1\n",
            4410 + i
        ));
        s.push_str(&format!("08:{minute:02}:51 job {} {outcome}\n", 4410 + i));
        if outcome.starts_with("jammed") {
            s.push_str(&format!(
                "08:{minute:02}:52 PLOT-2 status=paper-jam tray=roll media=bond-90g code=0x21B4\n"
            ));
        }
    }
    s.push_str("09:02:10 PLOT-2 firmware=TCU_04.12 rollers=312k sheets (service due at 300k)\n");
    s
}

/// The sign-in log lines around the alert, as exported from the identity provider.
pub(crate) fn signin_csv() -> String {
    "time_utc,user,ip,country,app,result\n\
     2026-11-30T03:12:07Z,emily.park,203.0.113.77,RO,Exchange Online,success\n\
     2026-11-30T03:12:41Z,emily.park,203.0.113.77,RO,Exchange Online,success (new inbox rule)\n\
     2026-11-30T03:15:02Z,emily.park,203.0.113.77,RO,SharePoint,failure (MFA required)\n\
     2026-11-30T08:01:55Z,emily.park,198.51.100.12,US,Outlook,success\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screenshot_is_a_png_tandem_accepts() {
        let png = plotter_panel_png();
        let k = tandem_domain::attachments::classify(&png, true, "panel.png", Some("image/png"));
        assert_eq!(k, Ok(tandem_domain::attachments::Kind::Image("image/png")));
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }
}
