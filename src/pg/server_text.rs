//! Text of the database (names, channels, trigger arguments, the SQL the extension runs) is
//! in the database's encoding; the extension works with Rust strings. This module converts
//! between the two without loss in every server encoding:
//! - UTF8 needs nothing;
//! - SQL_ASCII stores bytes that need not be in any encoding, so each byte stands for the
//!   character of the same number (as in LATIN1), which turns back into the same byte;
//! - every other encoding goes through PostgreSQL's own conversion to and from UTF-8, which
//!   every server encoding converts to without loss.
//!
//! Whatever crosses to the server (SPI statements and text arguments, catalog lookups,
//! channels) goes through `encode`; whatever comes from it through `decode`.

use std::ffi::{CStr, CString};

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ServerEncoding {
    Utf8,
    SqlAscii,
    Other,
}

fn server_encoding() -> ServerEncoding {
    // SAFETY: reads the backend's database encoding, set at connection start.
    match unsafe { pg_sys::GetDatabaseEncoding() } as u32 {
        pg_sys::pg_enc::PG_UTF8 => ServerEncoding::Utf8,
        pg_sys::pg_enc::PG_SQL_ASCII => ServerEncoding::SqlAscii,
        _ => ServerEncoding::Other,
    }
}

/// Whether the database's text is UTF-8 (so Rust strings are its text as they are).
pub fn is_utf8() -> bool {
    server_encoding() == ServerEncoding::Utf8
}

/// Whether the database's text is bytes in no set encoding (SQL_ASCII).
pub fn is_sql_ascii() -> bool {
    server_encoding() == ServerEncoding::SqlAscii
}

/// The Rust string of text in the database's encoding.
pub fn decode(bytes: &[u8]) -> String {
    match server_encoding() {
        ServerEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        ServerEncoding::SqlAscii => bytes.iter().map(|&byte| char::from(byte)).collect(),
        ServerEncoding::Other => {
            // SAFETY: `convert` passes `length` bytes at `text`, NUL-terminated; the result is
            // NUL-terminated.
            let utf8 = convert(bytes, |text, length| unsafe {
                pg_sys::pg_server_to_any(text, length, pg_sys::pg_enc::PG_UTF8 as i32)
            });
            String::from_utf8_lossy(&utf8).into_owned()
        }
    }
}

/// [`decode`] of a NUL-terminated string (a name, a trigger argument).
pub fn decode_cstr(text: &CStr) -> String {
    decode(text.to_bytes())
}

/// Text in the database's encoding of a Rust string that [`decode`] made, or that is ASCII.
pub fn encode(text: &str) -> Vec<u8> {
    match server_encoding() {
        ServerEncoding::Utf8 => text.as_bytes().to_vec(),
        ServerEncoding::SqlAscii => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        // SAFETY: as in `decode`.
        ServerEncoding::Other => convert(text.as_bytes(), |text, length| unsafe {
            pg_sys::pg_any_to_server(text, length, pg_sys::pg_enc::PG_UTF8 as i32)
        }),
    }
}

/// [`encode`], NUL-terminated. Text from the database never holds a NUL.
pub fn encode_cstring(text: &str) -> CString {
    CString::new(encode(text)).unwrap_or_default()
}

fn convert(
    bytes: &[u8],
    conversion: impl FnOnce(*const std::ffi::c_char, i32) -> *mut std::ffi::c_char,
) -> Vec<u8> {
    let source = CString::new(bytes).unwrap_or_default();
    let length = i32::try_from(source.as_bytes().len()).unwrap_or(i32::MAX);
    let converted = conversion(source.as_ptr(), length);
    if converted.cast_const() == source.as_ptr() {
        return source.into_bytes();
    }
    // SAFETY: a conversion that made a new string returns it NUL-terminated, in the current
    // memory context.
    let result = unsafe { CStr::from_ptr(converted) }.to_bytes().to_vec();
    // SAFETY: the conversion allocated `converted`, and it is not used again.
    unsafe { pg_sys::pfree(converted.cast()) };
    result
}

/// A `text` argument of an SPI statement, in the database's encoding.
pub fn text_arg(text: &str) -> DatumWithOid<'static> {
    ServerText(encode(text)).into()
}

/// A `text[]` argument of an SPI statement (NULL for `None`), in the database's encoding.
pub fn text_array_arg(items: Option<&[String]>) -> DatumWithOid<'static> {
    let Some(items) = items else {
        return DatumWithOid::null_oid(pg_sys::TEXTARRAYOID);
    };
    let mut elements: Vec<pg_sys::Datum> =
        items.iter().map(|item| text_datum(&encode(item))).collect();
    // SAFETY: the elements are text datums; construct_array copies them into a new array
    // in the current memory context.
    unsafe {
        let array = pg_sys::construct_array(
            elements.as_mut_ptr(),
            i32::try_from(elements.len()).expect("fewer than 2^31 names"),
            pg_sys::TEXTOID,
            -1,
            false,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
        );
        DatumWithOid::new(pg_sys::Datum::from(array), pg_sys::TEXTARRAYOID)
    }
}

fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: copies `bytes` into a new text value in the current memory context.
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            bytes.as_ptr().cast(),
            i32::try_from(bytes.len()).expect("text under 1 GB"),
        ))
    }
}

/// A function's `text` result, in the database's encoding.
pub fn returned(text: &str) -> ServerText {
    ServerText(encode(text))
}

/// A text result column of an SPI row, decoded (pgrx's own `String` would refuse text that
/// is not UTF-8).
pub fn text_column(
    row: &pgrx::spi::SpiHeapTupleData,
    column: usize,
) -> pgrx::spi::Result<Option<String>> {
    Ok(row.get::<ServerText>(column)?.map(|text| decode(&text.0)))
}

/// The bytes of a `text` (or `name`) value as the database holds them.
pub struct ServerText(pub Vec<u8>);

impl FromDatum for ServerText {
    /// # Safety
    /// As [`FromDatum::from_polymorphic_datum`]: unless `is_null`, `datum` must be a valid
    /// value of a text-like type.
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        type_oid: pg_sys::Oid,
    ) -> Option<Self> {
        // SAFETY: the caller passes a text-like varlena datum (see `is_compatible_with`);
        // `Vec<u8>`'s conversion copies its detoasted bytes.
        unsafe { Vec::<u8>::from_polymorphic_datum(datum, is_null, type_oid) }.map(ServerText)
    }
}

impl_sql_translatable!(ServerText, "text");

// SAFETY: returns the text datum `into_datum` makes, or SQL NULL.
unsafe impl pgrx::callconv::BoxRet for ServerText {
    /// # Safety
    /// As [`pgrx::callconv::BoxRet::box_into`]: the datum made must be what the function
    /// returns, and the function's SQL result type must be `text`.
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: a text datum in the function's memory context, as the SQL says.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

impl IntoDatum for ServerText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(text_datum(&self.0))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTOID
    }

    fn is_compatible_with(other: pg_sys::Oid) -> bool {
        other == pg_sys::TEXTOID || other == pg_sys::VARCHAROID
    }
}

/// A text[] result column of an SPI row, decoded; the statement selects it as
/// `pg_catalog.to_json(names)::pg_catalog.text`, which every encoding reads back the same.
pub fn text_array_column(
    row: &pgrx::spi::SpiHeapTupleData,
    column: usize,
) -> pgrx::spi::Result<Option<Vec<String>>> {
    Ok(text_column(row, column)?.map(|json| {
        serde_json::from_str::<Vec<Option<String>>>(&json)
            .map(|names| names.into_iter().flatten().collect())
            .unwrap_or_default()
    }))
}

/// Runs one statement built by the extension (DDL with quoted names), encoded.
pub fn run(statement: &str) {
    let statement = encode_cstring(statement);
    Spi::connect_mut(|_| {
        // SAFETY: inside an SPI connection; the statement is NUL-terminated. A PostgreSQL
        // error is raised as such through pgrx's guard.
        let status = unsafe { pg_sys::SPI_execute(statement.as_ptr(), false, 0) };
        if status < 0 {
            pgrx::error!("pg_column_notify: SPI_execute failed with status {status}");
        }
    });
}

/// A message for the client: the server takes messages as text in its encoding, and pgrx
/// passes Rust strings on as they are, so outside UTF-8 databases a character beyond ASCII
/// is written as `\uXXXX`.
pub fn for_message(message: String) -> String {
    if is_utf8() || message.is_ascii() {
        return message;
    }
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_ascii() {
            escaped.push(c);
        } else {
            escaped.push_str(&format!("\\u{:04X}", u32::from(c)));
        }
    }
    escaped
}
