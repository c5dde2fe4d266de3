//! Dates and timestamps written as JSON strings exactly as PostgreSQL's `JsonEncodeDateTime`
//! writes them (ISO 8601 "XSD" style), without calling into the server: date, timestamp, and
//! timestamptz when the session's time zone has a fixed offset (UTC, the common case).

/// Microseconds in a day.
const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_SEC: i64 = 1_000_000;
/// Julian day number of 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;

/// Appends a `date` (days since 2000-01-01) as a quoted JSON string.
pub fn push_date(out: &mut Vec<u8>, days: i32) {
    out.push(b'"');
    match days {
        i32::MIN => out.extend_from_slice(b"-infinity"),
        i32::MAX => out.extend_from_slice(b"infinity"),
        _ => {
            let (year, month, day) = civil_from_julian(i64::from(days) + POSTGRES_EPOCH_JDATE);
            push_ymd(out, year, month, day);
            push_era(out, year);
        }
    }
    out.push(b'"');
}

/// Appends a `timestamp` (microseconds since 2000-01-01) as a quoted JSON string; false
/// (nothing appended) when it lies outside the range PostgreSQL can break down.
pub fn push_timestamp(out: &mut Vec<u8>, micros: i64) -> bool {
    push_date_time(out, micros, None)
}

/// Appends a `timestamptz` as a quoted JSON string, shown in a zone `utc_offset_secs`
/// seconds east of UTC; false (nothing appended) when out of range.
pub fn push_timestamptz(out: &mut Vec<u8>, micros: i64, utc_offset_secs: i64) -> bool {
    push_date_time(out, micros, Some(utc_offset_secs))
}

fn push_date_time(out: &mut Vec<u8>, micros: i64, utc_offset_secs: Option<i64>) -> bool {
    let special: &[u8] = match micros {
        i64::MIN => b"-infinity",
        i64::MAX => b"infinity",
        _ => b"",
    };
    if !special.is_empty() {
        out.push(b'"');
        out.extend_from_slice(special);
        out.push(b'"');
        return true;
    }
    let offset = utc_offset_secs.unwrap_or(0);
    let Some(local) = offset
        .checked_mul(USECS_PER_SEC)
        .and_then(|o| micros.checked_add(o))
    else {
        return false;
    };
    let days = local.div_euclid(USECS_PER_DAY);
    let time_of_day = local.rem_euclid(USECS_PER_DAY);
    let julian = days + POSTGRES_EPOCH_JDATE;
    if !(0..=i64::from(i32::MAX)).contains(&julian) {
        return false;
    }
    let (year, month, day) = civil_from_julian(julian);
    let seconds = time_of_day / USECS_PER_SEC;
    let fraction = time_of_day % USECS_PER_SEC;

    out.push(b'"');
    push_ymd(out, year, month, day);
    out.push(b'T');
    push_two_digits(out, seconds / 3600);
    out.push(b':');
    push_two_digits(out, seconds / 60 % 60);
    out.push(b':');
    push_two_digits(out, seconds % 60);
    push_fraction(out, fraction);
    if utc_offset_secs.is_some() {
        push_zone(out, offset);
    }
    push_era(out, year);
    out.push(b'"');
    true
}

/// Proleptic Gregorian year, month, day of a Julian day number (PostgreSQL's `j2date`).
fn civil_from_julian(julian_day: i64) -> (i64, i64, i64) {
    let mut julian = julian_day + 32044;
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut year = julian * 4 / 1461;
    julian = if year != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    year += quad * 4;
    let quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year - 4800, month, day)
}

/// `YYYY-MM-DD`, years before 1 AD written as their BC number (the era follows at the end).
fn push_ymd(out: &mut Vec<u8>, year: i64, month: i64, day: i64) {
    let shown_year = if year > 0 { year } else { 1 - year };
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(shown_year).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        4usize.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
    out.push(b'-');
    push_two_digits(out, month);
    out.push(b'-');
    push_two_digits(out, day);
}

fn push_era(out: &mut Vec<u8>, year: i64) {
    if year <= 0 {
        out.extend_from_slice(b" BC");
    }
}

fn push_two_digits(out: &mut Vec<u8>, value: i64) {
    out.push(b'0' + (value / 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

/// `.ffffff` without trailing zeros; nothing for whole seconds.
fn push_fraction(out: &mut Vec<u8>, micros: i64) {
    if micros == 0 {
        return;
    }
    let mut digits = [0u8; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let significant = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.push(b'.');
    out.extend_from_slice(&digits[..significant]);
}

/// `+hh:mm`, or `+hh:mm:ss` when the offset has seconds (east of UTC is `+`).
fn push_zone(out: &mut Vec<u8>, utc_offset_secs: i64) {
    out.push(if utc_offset_secs >= 0 { b'+' } else { b'-' });
    let total = utc_offset_secs.abs();
    push_two_digits(out, total / 3600);
    out.push(b':');
    push_two_digits(out, total / 60 % 60);
    if total % 60 != 0 {
        out.push(b':');
        push_two_digits(out, total % 60);
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    /// Values of `sql_type` across PostgreSQL's whole range (edges, eras, leap days and
    /// random ones), each with `to_json`'s rendering and its stored integer.
    fn server_renderings(
        sql_type: &str,
        edges: &str,
        random: &str,
        stored: &str,
    ) -> Vec<(String, i64)> {
        let query = format!(
            "WITH v AS (SELECT x::{sql_type} AS value FROM (VALUES {edges}) t(x)
                        UNION ALL SELECT {random} FROM generate_series(1, 3000))
             SELECT to_json(value)::text, {stored} FROM v"
        );
        Spi::connect(|client| {
            client
                .select(&query, None, &[])
                .unwrap()
                .map(|row| {
                    (
                        row.get::<String>(1).unwrap().unwrap(),
                        row.get::<i64>(2).unwrap().unwrap(),
                    )
                })
                .collect()
        })
    }

    /// Edges that stay in range in every zone tested (the very last instant is added for
    /// timestamp only).
    const TIMESTAMP_EDGES: &str =
        "('infinity'), ('-infinity'), ('2000-01-01'), ('1999-12-31 23:59:59.999999'),
        ('0001-01-01 00:00:00'), ('0001-12-31 23:59:59.5 BC'), ('4713-11-24 00:00 BC'),
        ('294276-12-30 23:59:59.999999'), ('1970-01-01 00:00:00.5'), ('2024-02-29 12:34:56.0001'),
        ('1900-03-01'), ('2100-02-28 23:00'), ('10000-01-01')";
    const RANDOM_TIMESTAMP: &str = "timestamp '4713-11-25 BC' + random() * interval '298000 years'";
    /// The stored microseconds since 2000-01-01 of `{v}` (a timestamp), computed by days and
    /// time of day, which stays exact at the ends of the range.
    const STORED_MICROS: &str = "CASE WHEN value = 'infinity' THEN 9223372036854775807
        WHEN value = '-infinity' THEN -9223372036854775808
        ELSE ({v}::date - date '2000-01-01')::bigint * 86400000000
             + (extract(epoch FROM {v}::time) * 1000000)::bigint END";

    fn check(cases: Vec<(String, i64)>, render: impl Fn(&mut Vec<u8>, i64) -> bool) {
        assert!(cases.len() > 3000);
        for (expected, stored) in cases {
            let mut out = Vec::new();
            assert!(render(&mut out, stored), "{expected} is in range");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "stored value {stored}"
            );
        }
    }

    #[pg_test]
    fn dates_match_to_json() {
        let cases = server_renderings(
            "date",
            "('infinity'), ('-infinity'), ('2000-01-01'), ('0001-01-01'), ('0001-12-31 BC'),
             ('4713-11-24 BC'), ('5874897-12-31'), ('1900-03-01'), ('2024-02-29')",
            "date '4713-11-24 BC' + (random() * 2000000000)::int",
            "CASE WHEN value = 'infinity' THEN 2147483647 WHEN value = '-infinity' THEN -2147483648
                  ELSE value - date '2000-01-01' END",
        );
        check(cases, |out, days| {
            push_date(out, days as i32);
            true
        });
    }

    #[pg_test]
    fn timestamps_match_to_json() {
        let stored = STORED_MICROS.replace("{v}", "value");
        let edges = format!("{TIMESTAMP_EDGES}, ('294276-12-31 23:59:59.999999')");
        let cases = server_renderings("timestamp", &edges, RANDOM_TIMESTAMP, &stored);
        check(cases, push_timestamp);
    }

    #[pg_test]
    fn timestamptz_in_fixed_zones_match_to_json() {
        for (zone, offset) in [
            ("'UTC'", 0),
            ("'Etc/GMT-5'", 18000),
            ("INTERVAL '-03:30' HOUR TO MINUTE", -12600),
        ] {
            Spi::run(&format!("SET LOCAL TIME ZONE {zone}")).unwrap();
            let random = format!("({RANDOM_TIMESTAMP})::timestamptz");
            let stored = STORED_MICROS.replace("{v}", "(value AT TIME ZONE 'UTC')");
            let cases = server_renderings("timestamptz", TIMESTAMP_EDGES, &random, &stored);
            check(cases, |out, micros| push_timestamptz(out, micros, offset));
        }
    }
}
