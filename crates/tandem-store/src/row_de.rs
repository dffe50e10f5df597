//! Decodes a SQLite row, read on the calling thread ([`crate::Read::direct`]), into a serde
//! type whose fields follow the row's columns by position — the same column tuples that a
//! page read as one JSON value decodes into ([`crate::query::Sql::fetch_page`]), so both
//! paths give the same values: NULL → `None`, integers as `i64`, text as strings.
//!
//! (serde_rusqlite's row decoder maps rows by column name and copies the names for every
//! row; a positional tuple is all this needs.)

use rusqlite::types::ValueRef;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

/// Why a row did not decode.
#[derive(Debug)]
pub(crate) struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

/// Decodes `row` as a `T`, column `i` as its field `i`.
pub(crate) fn from_row<T: de::DeserializeOwned>(row: &rusqlite::Row<'_>) -> Result<T, DecodeError> {
    T::deserialize(RowDe { row })
}

struct RowDe<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
}

impl<'de> de::Deserializer<'de> for RowDe<'_, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.row.as_ref().column_count();
        visitor.visit_seq(Columns {
            row: self.row,
            next: 0,
            len,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct Columns<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    next: usize,
    len: usize,
}

impl<'de> SeqAccess<'de> for Columns<'_, '_> {
    type Error = DecodeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecodeError> {
        if self.next >= self.len {
            return Ok(None);
        }
        let value = self
            .row
            .get_ref(self.next)
            .map_err(|e| DecodeError(e.to_string()))?;
        self.next += 1;
        seed.deserialize(Column(value)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.next)
    }
}

struct Column<'a>(ValueRef<'a>);

impl<'de> de::Deserializer<'de> for Column<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Null => visitor.visit_none(),
            ValueRef::Integer(i) => visitor.visit_i64(i),
            ValueRef::Real(f) => visitor.visit_f64(f),
            ValueRef::Text(t) => visitor.visit_str(
                std::str::from_utf8(t)
                    .map_err(|e| DecodeError(format!("text is not UTF-8: {e}")))?,
            ),
            ValueRef::Blob(b) => visitor.visit_bytes(b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            ValueRef::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}
