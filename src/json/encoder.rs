//! Renders one column value as JSON exactly as `row_to_json` does, choosing the rendering
//! once per column per statement (the categories of PostgreSQL's `json_categorize_type`).
//! Common types are written directly; the rest go through the type's own functions.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::json::array::ArrayEncoder;
use crate::json::text as json_text;
use crate::pg::builtin_functions::{builtin, function_info, output_function};
use crate::pg::datum_image::is_plain;

/// Room `JsonEncodeDateTime` needs (`MAXDATELEN + 1`).
const DATE_TIME_BUFFER: usize = pg_sys::MAXDATELEN as usize + 1;

/// How the values of one column become JSON.
pub enum ColumnEncoder {
    Bool,
    Int2,
    Int4,
    Int8,
    /// Text-like types whose output is their stored text (text, varchar, char(n)).
    Text,
    /// `json`: its stored text, verbatim.
    JsonText,
    /// float4, float8, numeric: the output text, unquoted when it is a JSON number.
    Number(pg_sys::FmgrInfo),
    /// date, timestamp, timestamptz: the server's own JSON rendering of the type.
    DateTime(pg_sys::Oid),
    /// jsonb: its output text, verbatim.
    JsonOutput(pg_sys::FmgrInfo),
    /// uuid: its text, quoted.
    Uuid,
    /// Arrays, element by element.
    Array(Box<ArrayEncoder>),
    /// Arrays of records (`array_to_json`), composites (`row_to_json`) and user types with
    /// a cast to json: a function that returns json text, written verbatim.
    JsonFunction(pg_sys::FmgrInfo),
    /// Everything else: the output text as a JSON string.
    Quoted(pg_sys::FmgrInfo),
}

impl ColumnEncoder {
    /// Chooses the rendering of values of type `type_oid`. Function lookups are made in
    /// `memory_context`, which must live as long as the encoder.
    ///
    /// # Safety
    /// Must run inside a transaction; `memory_context` must be valid.
    pub unsafe fn for_type(type_oid: pg_sys::Oid, memory_context: pg_sys::MemoryContext) -> Self {
        // SAFETY: a catalog lookup inside a transaction (the caller's contract).
        let base = unsafe { pg_sys::getBaseType(type_oid) };
        // SAFETY: inside a transaction, with a context that outlives the encoder (the
        // caller's contract).
        let function = |oid| unsafe { function_info(oid, memory_context) };
        match base {
            pg_sys::BOOLOID => Self::Bool,
            pg_sys::INT2OID => Self::Int2,
            pg_sys::INT4OID => Self::Int4,
            pg_sys::INT8OID => Self::Int8,
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Self::Text,
            pg_sys::JSONOID => Self::JsonText,
            pg_sys::FLOAT4OID | pg_sys::FLOAT8OID | pg_sys::NUMERICOID => {
                Self::Number(function(output_function(base)))
            }
            pg_sys::DATEOID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => Self::DateTime(base),
            pg_sys::JSONBOID => Self::JsonOutput(function(output_function(base))),
            pg_sys::UUIDOID => Self::Uuid,
            // SAFETY: as for `function`.
            _ if is_array(base) => match unsafe { ArrayEncoder::for_array(base, memory_context) } {
                Some(array) => Self::Array(Box::new(array)),
                // SAFETY: as for `function`.
                None => Self::JsonFunction(unsafe { builtin(c"array_to_json", memory_context) }),
            },
            // SAFETY: a catalog lookup of an existing type.
            _ if unsafe { pg_sys::type_is_rowtype(base) } => {
                // SAFETY: as for `function`.
                Self::JsonFunction(unsafe { builtin(c"row_to_json", memory_context) })
            }
            // SAFETY: inside a transaction (the caller's contract).
            _ => match unsafe { cast_to_json(base) } {
                Some(cast) => Self::JsonFunction(function(cast)),
                None => Self::Quoted(function(output_function(base))),
            },
        }
    }

    /// Appends the JSON rendering of one non-null value.
    ///
    /// # Safety
    /// `value` must be a valid datum of the type this encoder was made for.
    pub unsafe fn encode(&mut self, value: pg_sys::Datum, out: &mut Vec<u8>) {
        match self {
            Self::Bool => out.extend_from_slice(if value.value() != 0 {
                b"true"
            } else {
                b"false"
            }),
            Self::Int2 => push_integer(out, value.value() as i16),
            Self::Int4 => push_integer(out, value.value() as i32),
            Self::Int8 => push_integer(out, value.value() as i64),
            // SAFETY: `value` is of a text-like type, a varlena (the caller's contract).
            Self::Text => json_text::push_string(out, unsafe { varlena_bytes(value) }),
            // SAFETY: `value` is a json value, a varlena (the caller's contract).
            Self::JsonText => out.extend_from_slice(unsafe { varlena_bytes(value) }),
            Self::Number(output) => {
                // SAFETY: the output function of the value's type (the caller's contract),
                // looked up in a context that outlives the encoder.
                let text = unsafe { call_output(output, value) };
                if json_text::is_json_number(text) {
                    out.extend_from_slice(text);
                } else {
                    json_text::push_string(out, text);
                }
            }
            // SAFETY: `value` is of the date/time type the encoder was made for (the
            // caller's contract).
            Self::DateTime(type_oid) => unsafe { push_server_date_time(out, value, *type_oid) },
            // SAFETY: a uuid is passed by reference, as its 16 bytes.
            Self::Uuid => push_uuid(out, unsafe { &*value.cast_mut_ptr::<[u8; 16]>() }),
            // SAFETY: `value` is an array of the type the encoder was made for (the caller's
            // contract).
            Self::Array(array) => unsafe { array.encode(value, out) },
            Self::JsonOutput(output) => {
                // SAFETY: as for `Number`.
                out.extend_from_slice(unsafe { call_output(output, value) })
            }
            Self::JsonFunction(function) => {
                // SAFETY: a function of one argument of the value's type (the caller's
                // contract), looked up in a context that outlives the encoder.
                let json =
                    unsafe { pg_sys::FunctionCall1Coll(function, pg_sys::InvalidOid, value) };
                // SAFETY: the function returns json, a varlena.
                out.extend_from_slice(unsafe { varlena_bytes(json) });
            }
            Self::Quoted(output) => {
                // SAFETY: as for `Number`.
                json_text::push_string(out, unsafe { call_output(output, value) })
            }
        }
    }
}

/// The server's own rendering, as `row_to_json` writes it. (Writing the common cases in
/// Rust was measured no faster: 8 timestamptz columns a row, paired runs, ratio 1.00.)
///
/// # Safety
/// `value` must be a value of `type_oid`, a date/time type `JsonEncodeDateTime` takes.
unsafe fn push_server_date_time(out: &mut Vec<u8>, value: pg_sys::Datum, type_oid: pg_sys::Oid) {
    let mut buffer = [0 as std::ffi::c_char; DATE_TIME_BUFFER];
    // SAFETY: `value` is of `type_oid` (the caller's contract); the buffer has the size
    // JsonEncodeDateTime writes at most, and it ends the text with a NUL.
    let text = unsafe {
        pg_sys::JsonEncodeDateTime(buffer.as_mut_ptr(), value, type_oid, std::ptr::null());
        CStr::from_ptr(buffer.as_ptr())
    };
    out.push(b'"');
    out.extend_from_slice(text.to_bytes());
    out.push(b'"');
}

/// `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"`, lower-case, as `uuid_out` writes it.
fn push_uuid(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    out.push(b'"');
    for (n, byte) in bytes.iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        json_text::push_hex_byte(out, *byte);
    }
    out.push(b'"');
}

fn push_integer<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The bytes of a text-like varlena, detoasted when needed. The copy a detoast makes lives
/// in the current (per-row) memory context.
///
/// # Safety
/// `value` must be a varlena; `'a` must not outlive it nor the current memory context.
unsafe fn varlena_bytes<'a>(value: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: `value` is a varlena (the caller's contract); a detoasted copy is a plain
    // varlena in the current memory context.
    unsafe {
        let mut varlena = value.cast_mut_ptr::<pg_sys::varlena>();
        if !is_plain(varlena) {
            varlena = pg_sys::pg_detoast_datum_packed(varlena);
        }
        pgrx::varlena::varlena_to_byte_slice(varlena)
    }
}

/// The output text of `value`, in the current memory context.
///
/// # Safety
/// `output` must be the output function of the value's type; `'a` must not outlive the
/// current memory context.
unsafe fn call_output<'a>(output: &mut pg_sys::FmgrInfo, value: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: an output function returns a NUL-terminated string in the current memory
    // context, for a value of its type (the caller's contract).
    unsafe { CStr::from_ptr(pg_sys::OutputFunctionCall(output, value)).to_bytes() }
}

fn is_array(type_oid: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup of a type.
    (unsafe { pg_sys::get_element_type(type_oid) }) != pg_sys::InvalidOid
        || type_oid == pg_sys::ANYARRAYOID
        || type_oid == pg_sys::ANYCOMPATIBLEARRAYOID
        || type_oid == pg_sys::RECORDARRAYOID
}

/// The explicit cast function to json of a user-defined type, as `to_json` would use it.
///
/// # Safety
/// Must run inside a transaction.
unsafe fn cast_to_json(type_oid: pg_sys::Oid) -> Option<pg_sys::Oid> {
    if u32::from(type_oid) < pg_sys::FirstNormalObjectId {
        return None;
    }
    let mut cast = pg_sys::InvalidOid;
    // SAFETY: a catalog lookup inside a transaction (the caller's contract), writing into
    // the local `cast`.
    let path = unsafe {
        pg_sys::find_coercion_pathway(
            pg_sys::JSONOID,
            type_oid,
            pg_sys::CoercionContext::COERCION_EXPLICIT,
            &mut cast,
        )
    };
    (path == pg_sys::CoercionPathType::COERCION_PATH_FUNC && cast != pg_sys::InvalidOid)
        .then_some(cast)
}
