//! JSON text primitives that reproduce PostgreSQL's own `escape_json` and
//! `IsValidJsonNumber` byte for byte, so payloads equal what `row_to_json` renders.

/// Appends `text` as a JSON string literal, escaped exactly as `escape_json` does:
/// the short escapes for `\b \f \n \r \t " \\`, `\u00XX` (lowercase hex) for other control
/// characters, and every other byte (non-ASCII included) copied as it is.
pub fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    // Most text needs no escape at all: copy it in one go.
    if !text.iter().any(|&byte| needs_escape(byte)) {
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    let mut clean_from = 0;
    for (at, &byte) in text.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text[clean_from..at]);
        if escape.is_empty() {
            push_unicode_escape(out, byte);
        } else {
            out.extend_from_slice(escape);
        }
        clean_from = at + 1;
    }
    out.extend_from_slice(&text[clean_from..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn push_unicode_escape(out: &mut Vec<u8>, byte: u8) {
    out.extend_from_slice(b"\\u00");
    push_hex_byte(out, byte);
}

/// `byte` as two lower-case hex digits.
pub fn push_hex_byte(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(byte >> 4)]);
    out.push(HEX[usize::from(byte & 0x0f)]);
}

/// Appends `"name":`, the key of an object member.
pub fn push_key(out: &mut Vec<u8>, name: &[u8]) {
    push_string(out, name);
    out.push(b':');
}

/// True when `text` is a number in JSON's grammar, the test PostgreSQL applies to the
/// output of numeric types before writing it unquoted (so `NaN` and `Infinity` get quotes).
pub fn is_json_number(text: &[u8]) -> bool {
    let mut rest = text.strip_prefix(b"-").unwrap_or(text);
    rest = match rest {
        [b'0', tail @ ..] => tail,
        [b'1'..=b'9', ..] => skip_digits(rest),
        _ => return false,
    };
    if let Some(fraction) = rest.strip_prefix(b".") {
        let after = skip_digits(fraction);
        if after.len() == fraction.len() {
            return false;
        }
        rest = after;
    }
    if let Some(exponent) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exponent = exponent
            .strip_prefix(b"+")
            .or_else(|| exponent.strip_prefix(b"-"))
            .unwrap_or(exponent);
        let after = skip_digits(exponent);
        if after.len() == exponent.len() {
            return false;
        }
        rest = after;
    }
    rest.is_empty()
}

fn skip_digits(text: &[u8]) -> &[u8] {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    &text[digits..]
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    fn string(text: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[pg_test]
    fn escapes_like_postgres() {
        let samples = [
            "plain",
            "quote \" backslash \\ slash /",
            "line\nfeed\r\ttab\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "é ünïcødé 😀",
            "",
        ];
        for sample in samples {
            let expected = Spi::get_one_with_args::<String>(
                "SELECT to_json($1::text)::text",
                &[sample.into()],
            )
            .unwrap()
            .unwrap();
            assert_eq!(string(sample), expected, "escaping {sample:?}");
        }
    }

    #[pg_test]
    fn recognises_json_numbers() {
        for number in ["0", "-0", "12", "-1.5", "1e10", "1E+2", "2.5e-3", "0.000"] {
            assert!(is_json_number(number.as_bytes()), "{number}");
        }
        for other in [
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            "-",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
        ] {
            assert!(!is_json_number(other.as_bytes()), "{other}");
        }
    }
}
