//! The name of the trigger a watch installs: readable, and within PostgreSQL's 63-byte
//! limit even for long column names; `watch.rs` numbers it when the name is taken.

const PREFIX: &str = "column_notify_";
/// Longer identifiers are truncated by PostgreSQL (`NAMEDATALEN` - 1).
const MAX_NAME_BYTES: usize = pgrx::pg_sys::NAMEDATALEN as usize - 1;

/// `column_notify_<col>[_<col>...]`; when that is too long, a prefix of it followed by a
/// hash of the full column list, so distinct column lists keep distinct names.
pub fn trigger_name_for(columns: &[String]) -> String {
    let full = format!("{PREFIX}{}", columns.join("_"));
    if full.len() <= MAX_NAME_BYTES {
        return full;
    }
    let suffix = format!("_{:016x}", fnv1a(columns));
    let mut cut = MAX_NAME_BYTES - suffix.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &full[..cut])
}

/// `base` itself for `n` = 1, else `base` followed by `_<n>`, shortened to stay within the
/// limit.
pub fn numbered_trigger_name(base: &str, n: u32) -> String {
    if n == 1 {
        return base.to_owned();
    }
    let suffix = format!("_{n}");
    let mut cut = base.len().min(MAX_NAME_BYTES - suffix.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// FNV-1a over the column names, each followed by a NUL so ["ab","c"] and ["a","bc"] differ.
fn fnv1a(columns: &[String]) -> u64 {
    columns
        .iter()
        .flat_map(|column| column.bytes().chain(std::iter::once(0)))
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn short_names_are_readable() {
        assert_eq!(
            trigger_name_for(&["canceled".into()]),
            "column_notify_canceled"
        );
    }

    #[pg_test]
    fn numbered_names_fit() {
        assert_eq!(
            numbered_trigger_name("column_notify_a", 1),
            "column_notify_a"
        );
        assert_eq!(
            numbered_trigger_name("column_notify_a", 2),
            "column_notify_a_2"
        );
        let long = trigger_name_for(&["é".repeat(40)]);
        let numbered = numbered_trigger_name(&long, 12);
        assert!(numbered.len() <= MAX_NAME_BYTES && numbered.ends_with("_12"));
    }

    #[pg_test]
    fn long_names_fit_and_stay_distinct() {
        let long_a = "é".repeat(40);
        let long_b = format!("{}x", "é".repeat(39));
        let a = trigger_name_for(&[long_a]);
        let b = trigger_name_for(&[long_b]);
        assert!(a.len() <= MAX_NAME_BYTES && b.len() <= MAX_NAME_BYTES);
        assert_ne!(a, b);
    }
}
