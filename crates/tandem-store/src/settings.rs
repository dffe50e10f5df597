//! Installation-wide settings kept in the database, so every server sees the same.

use crate::query::{text, Sql};
use crate::Result;
use sqlx::AnyConnection;

/// Reads a setting.
pub async fn get(c: &mut AnyConnection, key: &str) -> Result<Option<String>> {
    let row = Sql::new("SELECT value FROM settings WHERE key = ")
        .text(key)
        .fetch_optional(c)
        .await?;
    row.map(|r| text(&r, "value")).transpose()
}

/// Writes a setting, replacing any earlier value.
pub async fn set(c: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    Sql::new("INSERT INTO settings (key, value) VALUES (")
        .text(key)
        .push(", ")
        .text(value)
        .push(") ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .execute(c)
        .await?;
    Ok(())
}

/// Reads a setting, first storing `fresh` as its value if it has none. When several servers
/// race, the first insert wins and every one of them reads the same value.
pub async fn get_or_insert(c: &mut AnyConnection, key: &str, fresh: &str) -> Result<String> {
    Sql::new("INSERT INTO settings (key, value) VALUES (")
        .text(key)
        .push(", ")
        .text(fresh)
        .push(") ON CONFLICT (key) DO NOTHING")
        .execute(c)
        .await?;
    match get(c, key).await? {
        Some(v) => Ok(v),
        None => Err(crate::StoreError::Corrupt(format!(
            "the setting {key} was stored but cannot be read back"
        ))),
    }
}
