//! Strict reads of stored columns: a value of the wrong type, or text that is not UTF-8, is an
//! error message for a `Corrupt` variant, never a default.
//!
//! Owns: `integer`, `text` and `blob`. Must not: coerce a value (SQLite would turn text into 0).

use bytes::Bytes;
use rusqlite::Row;
use rusqlite::types::ValueRef;

/// An `INTEGER` column.
pub(crate) fn integer(row: &Row<'_>, index: usize, name: &str) -> Result<i64, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Integer(value)) => Ok(value),
        Ok(other) => Err(format!("{name} is {}, not an integer", other.data_type())),
        Err(error) => Err(format!("{name} is unreadable: {error}")),
    }
}

/// An `INTEGER` column that must not be negative (a sequence or a revision).
pub(crate) fn unsigned(row: &Row<'_>, index: usize, name: &str) -> Result<u64, String> {
    let value = integer(row, index, name)?;
    u64::try_from(value).map_err(|_| format!("{name} is negative ({value})"))
}

/// A `TEXT` column.
pub(crate) fn text<'r>(row: &'r Row<'_>, index: usize, name: &str) -> Result<&'r str, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Text(bytes)) => {
            std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))
        }
        Ok(other) => Err(format!("{name} is {}, not text", other.data_type())),
        Err(error) => Err(format!("{name} is unreadable: {error}")),
    }
}

/// A `BLOB` column, copied out of the row.
pub(crate) fn blob(row: &Row<'_>, index: usize, name: &str) -> Result<Bytes, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Blob(bytes)) => Ok(Bytes::copy_from_slice(bytes)),
        Ok(other) => Err(format!("{name} is {}, not a blob", other.data_type())),
        Err(error) => Err(format!("{name} is unreadable: {error}")),
    }
}
