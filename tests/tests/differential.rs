//! Differential test: on a table holding every kind of column type, the extension's payload
//! must carry `id`, `old` and `new` exactly as the reference plpgsql trigger sends them
//! (`row_to_json`), byte for byte, over hundreds of randomised committed updates.

use integration_tests::{Received, TestDatabase, Xorshift};
use serde_json::value::RawValue;

const UPDATES: usize = 240;
const ROWS: i32 = 6;

/// Each column with the SQL literals it takes in the test, NULL always among them.
const COLUMNS: &[(&str, &str, &[&str])] = &[
    ("\"Flag\"", "boolean", &["true", "false"]),
    ("small", "int2", &["0", "-32768", "32767"]),
    ("\"int\"", "int4", &["42", "-2147483648", "2147483647"]),
    (
        "big",
        "int8",
        &["-9223372036854775808", "9223372036854775807", "0"],
    ),
    (
        "f4",
        "float4",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "1.5",
            "'-0'",
            "3.4028235e38",
            "1e-45",
        ],
    ),
    (
        "f8",
        "float8",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0.1",
            "1e308",
            "-2.5e-300",
            "123456789.123456789",
        ],
    ),
    (
        "num",
        "numeric",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0",
            "-1.50",
            "12345678901234567890.123456789",
            "0.00000000000000000001",
        ],
    ),
    (
        "\"text with \"\"quotes\"\"\"",
        "text",
        &[
            r#"E'quote \" backslash \\ newline \n tab \t cr \r formfeed \f backspace \b'"#,
            r"E'control \x01 \x1f del \x7f'",
            "'ünïcødé 😀 漢字'",
            "''",
            r#"'{"looks": "like json"}'"#,
            "'/slash'",
        ],
    ),
    ("vc", "varchar(20)", &["'short'", r"E'a\\b'", "' padded  '"]),
    ("ch", "char(5)", &["'ab'", "'abcde'", "''"]),
    (
        "u",
        "uuid",
        &[
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'00000000-0000-0000-0000-000000000000'",
        ],
    ),
    (
        "d",
        "date",
        &[
            "'2024-02-29'",
            "'infinity'",
            "'-infinity'",
            "'0044-03-15 BC'",
        ],
    ),
    (
        "ts",
        "timestamp",
        &[
            "'2024-01-01 10:00:00.123456'",
            "'infinity'",
            "'-infinity'",
            "'1999-12-31 23:59:59'",
            "'0044-03-15 10:00:00.5 BC'",
        ],
    ),
    (
        "tstz",
        "timestamptz",
        &[
            "'2024-06-01 12:00:00+02'",
            "'infinity'",
            "'-infinity'",
            "'1970-01-01 00:00:00+00'",
            "'2024-03-31 02:30:00+01'",
            "'0044-03-15 10:00 BC'",
        ],
    ),
    ("tm", "time", &["'23:59:59.999999'", "'00:00'"]),
    ("tmtz", "timetz", &["'10:00+05:30'"]),
    (
        "iv",
        "interval",
        &["'1 year 2 mons 3 days 04:05:06.789'", "'-1 day'", "'0'"],
    ),
    ("b", "bytea", &[r"'\xdeadbeef'", r"'\x'", r"'\x00ff'"]),
    (
        "j",
        "json",
        &[
            r#"'{"b": 1,   "a": [1, 2]}'"#,
            r#"'"string"'"#,
            "'null'",
            "'[]'",
            r#"'{"dup":1,"dup":2}'"#,
        ],
    ),
    (
        "jb",
        "jsonb",
        &[r#"'{"b": 1, "a": [1, 2]}'"#, r#"'"x"'"#, "'1.50'", "'null'"],
    ),
    (
        "int_matrix",
        "int[]",
        &["'{{1,2},{3,NULL}}'", "'{}'", "'{NULL}'", "'{{{1}},{{2}}}'"],
    ),
    (
        "text_arr",
        "text[]",
        &[
            r#"'{"a \"q\"", NULL, "b\\\\c"}'"#,
            "ARRAY['x y', 'ünï']",
            "'{}'",
        ],
    ),
    ("json_arr", "json[]", &[r#"ARRAY['{"k": 1}'::json, NULL]"#]),
    (
        "ts_arr",
        "timestamptz[]",
        &["ARRAY['2024-01-01 00:00+00'::timestamptz, 'infinity']"],
    ),
    ("m", "mood", &["'sad'", "'happy \"very\"'"]),
    (
        "p",
        "pair",
        &[
            "ROW('label \"x\"', 1.5)::pair",
            "ROW(NULL, NULL)::pair",
            "ROW('', 'NaN')::pair",
        ],
    ),
    ("pair_arr", "pair[]", &["ARRAY[ROW('a', 1)::pair, NULL]"]),
    (
        "num_arr",
        "numeric[]",
        &["'{1.50,NaN,NULL,-Infinity}'", "'[2:3]={0,7}'"],
    ),
    ("f8_arr", "float8[]", &["'{0.1,Infinity,-0,1e308}'"]),
    (
        "misc_arr",
        "bool[]",
        &["'{true,NULL,false}'", "'[0:1][1:1]={{t},{f}}'"],
    ),
    (
        "uuid_arr",
        "uuid[]",
        &["'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'"],
    ),
    (
        "date_arr",
        "date[]",
        &["'{2024-02-29,infinity,0001-01-01 BC}'"],
    ),
    (
        "jsonb_arr",
        "jsonb[]",
        &[r#"ARRAY['{"b": 1, "a": 2}'::jsonb]"#],
    ),
    ("mood_arr", "mood[]", &["'{sad,\"happy \\\"very\\\"\"}'"]),
    ("dom_arr", "positive_int[]", &["'{1,2}'"]),
    ("arr_dom", "int_list", &["'{3,NULL}'", "'{}'"]),
    ("range_arr", "int4range[]", &["'{\"[1,2)\",empty}'"]),
    ("dom", "positive_int", &["1", "2147483647"]),
    ("dom_text", "short_text", &["'dom \"quoted\"'"]),
    ("r", "int4range", &["'[1,10)'", "'empty'", "'(,5]'"]),
    (
        "tsr",
        "tstzrange",
        &["'[2024-01-01 00:00+00, 2024-02-01 00:00+00)'"],
    ),
    ("addr", "inet", &["'192.168.0.1/24'", "'::1'"]),
    ("mac", "macaddr", &["'08:00:2b:01:02:03'"]),
    ("pt", "point", &["'(1.5,-2)'", "'(0,0)'"]),
    ("bx", "box", &["'((0,0),(1,1))'"]),
    ("bits", "bit(8)", &["B'10101010'", "B'00000000'"]),
    ("vb", "varbit", &["B'1'", "B''"]),
    ("money_col", "money", &["12.34"]),
    ("o", "oid", &["42"]),
    ("x", "xml", &["'<a b=\"1\">text &amp; more</a>'"]),
    ("h", "hstore", &[r#"'a=>1, "b c"=>NULL'"#]),
    ("\"ünï côdé\"", "text", &["'x'"]),
    ("\"Mixed Case\"", "int", &["1"]),
];

const REFERENCE_TRIGGER: &str = r#"
CREATE FUNCTION reference_notify() RETURNS trigger AS $trigger$
DECLARE payload TEXT;
BEGIN
  IF (TG_OP = 'UPDATE') AND (OLD.version IS DISTINCT FROM NEW.version) THEN
    payload := json_build_object('id',OLD.id,'old',row_to_json(OLD),'new',row_to_json(NEW));
    PERFORM pg_notify('reference', payload);
  END IF;
  RETURN NEW;
END;
$trigger$ LANGUAGE plpgsql;
CREATE TRIGGER reference_trigger AFTER UPDATE ON everything FOR EACH ROW
  WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE PROCEDURE reference_notify();
"#;

#[derive(serde::Deserialize)]
struct Parts<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    old: &'a RawValue,
    #[serde(borrow)]
    new: &'a RawValue,
}

fn parts(received: &Received) -> Parts<'_> {
    serde_json::from_str(&received.raw).unwrap_or_else(|error| {
        panic!(
            "payload is not the expected JSON ({error}): {}",
            received.raw
        )
    })
}

async fn create_schema(db: &TestDatabase) {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, sql_type, _)| format!("{name} {sql_type}"))
        .collect();
    db.client
        .batch_execute(&format!(
            "CREATE EXTENSION hstore;
             CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy \"very\"');
             CREATE TYPE pair AS (label text, amount numeric);
             CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
             CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100);
             CREATE DOMAIN int_list AS int[];
             CREATE TABLE everything (id int PRIMARY KEY, version int NOT NULL DEFAULT 0, {});
             INSERT INTO everything (id) SELECT generate_series(1, {ROWS});
             SELECT watch_column('everything', 'version', 'ours');
             {REFERENCE_TRIGGER}",
            columns.join(", ")
        ))
        .await
        .expect("creating the table of every type");
}

/// Time zones the writer's session runs in: the server's default, one with daylight saving
/// time (rendered through the server) and fixed offsets (rendered directly).
const TIME_ZONES: &[&str] = &["DEFAULT", "'America/New_York'", "'Etc/GMT+3'", "'UTC'"];

#[tokio::test]
async fn payload_equals_the_reference_trigger_for_every_type() {
    let db = TestDatabase::create("differential").await;
    create_schema(&db).await;
    let mut ours = db.listen("ours").await;
    let mut reference = db.listen("reference").await;
    let mut random = Xorshift::new(0x5eed_2026);

    for update in 0..UPDATES {
        if update % (UPDATES / TIME_ZONES.len()) == 0 {
            let zone = TIME_ZONES[update / (UPDATES / TIME_ZONES.len())];
            db.run(&format!("SET TIME ZONE {zone}")).await;
        }
        let mut assignments = vec!["version = version + 1".to_owned()];
        for (name, _, values) in COLUMNS {
            if random.below(3) == 0 {
                let choice = random.below(values.len() as u64 + 1) as usize;
                let value = values.get(choice).copied().unwrap_or("NULL");
                assignments.push(format!("{name} = {value}"));
            }
        }
        let id = random.below(ROWS as u64) as i32 + 1;
        let statement = format!(
            "UPDATE everything SET {} WHERE id = {id}",
            assignments.join(", ")
        );
        db.client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));

        let (mine, theirs) = (ours.next().await, reference.next().await);
        let (mine, theirs) = (parts(&mine), parts(&theirs));
        let context = format!("update {update}: {statement}");
        assert_eq!(mine.id.get(), theirs.id.get(), "id differs after {context}");
        assert_eq!(
            mine.old.get(),
            theirs.old.get(),
            "old differs after {context}"
        );
        assert_eq!(
            mine.new.get(),
            theirs.new.get(),
            "new differs after {context}"
        );
    }
    ours.assert_silent().await;
}

#[tokio::test]
async fn every_column_value_is_covered() {
    // Guards the test above: with this seed, every listed value of every column is set at
    // least once (so a type cannot silently drop out of the comparison).
    let mut random = Xorshift::new(0x5eed_2026);
    let mut seen: Vec<Vec<bool>> = COLUMNS
        .iter()
        .map(|(_, _, v)| vec![false; v.len() + 1])
        .collect();
    for _ in 0..UPDATES {
        for (column, (_, _, values)) in COLUMNS.iter().enumerate() {
            if random.below(3) == 0 {
                seen[column][random.below(values.len() as u64 + 1) as usize] = true;
            }
        }
        random.below(ROWS as u64);
    }
    for (column, flags) in seen.iter().enumerate() {
        assert!(
            flags.iter().all(|&s| s),
            "column {} misses a value",
            COLUMNS[column].0
        );
    }
}
