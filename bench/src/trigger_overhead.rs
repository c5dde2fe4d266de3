//! Per-row trigger overhead, measured side by side in one run: one committed
//! `UPDATE t SET canceled = NOT canceled` over every row of identical tables that differ
//! only in their trigger (none, the reference plpgsql trigger, contrib tcn, ours with its
//! options, ours watching a column the update leaves alone, which fires and compares but
//! sends nothing, ours with a row filter that turns every change down, ours and plpgsql
//! writing WAL messages instead of NOTIFY). The variants alternate within each round; the
//! report gives medians and ratios, never a lone absolute time, because this machine is
//! shared and noisy. One more row, in the same rounds: `pg_notify` of the plain watch's own
//! payloads in one transaction, less a scan of them: what NOTIFY alone costs any trigger that
//! sends them, the floor under the plain watch's ratio.
//!
//! With `--one-row-statements`, the rows are changed by as many one-row UPDATE statements
//! (in one transaction, from a DO block), which is what an application mostly does.
//!
//! Usage: trigger-overhead [--rows N] [--runs N] [--wide] [--one-row-statements] [--markdown]
//! Needs DATABASE_URL, the extension installed, contrib (for tcn) and `wal_level = logical`
//! (for the WAL variants).

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use column_notify_bench::{connect, database_url, describe, fail, median, positive_number};

struct Options {
    rows: u64,
    runs: usize,
    wide: bool,
    one_row_statements: bool,
    markdown: bool,
    /// Whether the role may run CHECKPOINT (superuser or pg_checkpoint).
    checkpoints: bool,
}

struct Variant {
    label: &'static str,
    table: &'static str,
    /// SQL that installs the trigger on `{table}`.
    install: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        label: "no trigger",
        table: "bench_none",
        install: "",
    },
    Variant {
        label: "plpgsql reference",
        table: "bench_plpgsql",
        install: "CREATE TRIGGER reference AFTER UPDATE ON {table} FOR EACH ROW
                  WHEN (OLD.canceled IS DISTINCT FROM NEW.canceled)
                  EXECUTE PROCEDURE bench_reference_notify()",
    },
    Variant {
        label: "contrib tcn (key only)",
        table: "bench_tcn",
        install: "CREATE TRIGGER tcn AFTER UPDATE ON {table} FOR EACH ROW
                  EXECUTE FUNCTION triggered_change_notification('bench_tcn')",
    },
    Variant {
        label: "pg_column_notify",
        table: "bench_ours",
        install: "SELECT watch_column('{table}', 'canceled', 'bench_ours')",
    },
    Variant {
        label: "pg_column_notify, metadata => false",
        table: "bench_no_metadata",
        install:
            "SELECT watch_column('{table}', 'canceled', 'bench_no_metadata', metadata => false)",
    },
    Variant {
        label: "pg_column_notify, batch => true",
        table: "bench_batch",
        install: "SELECT watch_column('{table}', 'canceled', 'bench_batch', batch => true)",
    },
    Variant {
        label: "pg_column_notify, batch, metadata => false",
        table: "bench_batch_no_metadata",
        install: "SELECT watch_column('{table}', 'canceled', 'bench_batch_no_metadata',
                                      batch => true, metadata => false)",
    },
    Variant {
        label: "pg_column_notify, nothing to send",
        table: "bench_unchanged",
        // The key never changes: the trigger fires and compares, and has nothing to send.
        install: "SELECT watch_column('{table}', 'id', 'bench_unchanged')",
    },
    Variant {
        label: "pg_column_notify, filtered out",
        table: "bench_filtered_out",
        // Every row changes its watched column, and the filter turns every one down.
        install: "SELECT watch_column('{table}', 'canceled', 'bench_filtered_out',
                                      filter => 'new.id < 0')",
    },
    Variant {
        label: "pg_column_notify, durable",
        table: "bench_durable",
        install: "SELECT watch_column('{table}', 'canceled', 'bench_durable', durable => true)",
    },
    Variant {
        label: "pg_column_notify, delivery => 'wal'",
        table: "bench_wal",
        install: "SELECT watch_column('{table}', 'canceled', 'bench_wal', delivery => 'wal')",
    },
    Variant {
        label: "plpgsql, pg_logical_emit_message",
        table: "bench_plpgsql_wal",
        install: "CREATE TRIGGER reference AFTER UPDATE ON {table} FOR EACH ROW
                  WHEN (OLD.canceled IS DISTINCT FROM NEW.canceled)
                  EXECUTE PROCEDURE bench_reference_emit_message()",
    },
];

const REFERENCE_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION bench_reference_notify() RETURNS trigger AS $trigger$
DECLARE payload TEXT;
BEGIN
  IF (TG_OP = 'UPDATE') AND (OLD.canceled != NEW.canceled) THEN
    payload := json_build_object('id',OLD.id,'old',row_to_json(OLD),'new',row_to_json(NEW));
    PERFORM pg_notify('bench_reference', payload);
  END IF;
  RETURN NEW;
END;
$trigger$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_reference_emit_message() RETURNS trigger AS $trigger$
DECLARE payload TEXT;
BEGIN
  IF (TG_OP = 'UPDATE') AND (OLD.canceled != NEW.canceled) THEN
    payload := json_build_object('id',OLD.id,'old',row_to_json(OLD),'new',row_to_json(NEW));
    PERFORM pg_logical_emit_message(true, 'bench_reference', payload);
  END IF;
  RETURN NEW;
END;
$trigger$ LANGUAGE plpgsql;
"#;

/// The appointments table of the issue: id, canceled, title, inserted_at, updated_at.
const NARROW_COLUMNS: &str = "id bigint PRIMARY KEY, canceled boolean NOT NULL, title text,
    inserted_at timestamptz NOT NULL, updated_at timestamptz NOT NULL";
const NARROW_FILL: &str = "SELECT g, false, 'appointment ' || g, now(), now()
    FROM generate_series(1, {rows}) g";

/// 30 columns of mixed types.
const WIDE_COLUMNS: &str = "id bigint PRIMARY KEY, canceled boolean NOT NULL,
    c_int int, c_big bigint, c_small smallint, c_num numeric, c_f8 float8, c_f4 float4,
    c_text text, c_vc varchar(40), c_char char(8), c_uuid uuid, c_date date, c_ts timestamp,
    c_tstz timestamptz, c_time time, c_iv interval, c_bytea bytea, c_json json, c_jsonb jsonb,
    c_arr int[], c_tarr text[], c_inet inet, c_bool boolean, c_text2 text, c_int2 int,
    c_num2 numeric, c_ts2 timestamptz, c_text3 text, c_null text";
const WIDE_FILL: &str = "SELECT g, false, g, g * 1000, (g % 1000)::smallint, g / 7.0, g / 3.0,
    g / 9.0, 'text ' || g, 'varchar ' || g, 'ch', md5(g::text)::uuid, date '2024-01-01' + (g % 365),
    timestamp '2024-01-01' + g * interval '1 minute', now(), time '12:00' + g * interval '1 second',
    g * interval '1 second', decode(md5(g::text), 'hex'), json_build_object('g', g, 'k', 'v'),
    jsonb_build_object('g', g), ARRAY[g, g + 1, g + 2], ARRAY['a' || g, 'b'], '10.0.0.1', g % 2 = 0,
    repeat('x', 20), g % 97, 123.456, now(), 'tail', NULL FROM generate_series(1, {rows}) g";

fn parse_options() -> Options {
    let mut options = Options {
        rows: 100_000,
        runs: 5,
        wide: false,
        one_row_statements: false,
        markdown: false,
        checkpoints: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| positive_number(&mut args, name);
        match arg.as_str() {
            "--rows" => options.rows = number("--rows"),
            "--runs" => options.runs = number("--runs") as usize,
            "--wide" => options.wide = true,
            "--one-row-statements" => options.one_row_statements = true,
            "--markdown" => options.markdown = true,
            "--help" | "-h" => {
                println!(
                    "usage: trigger-overhead [--rows N] [--runs N] [--wide] \
                     [--one-row-statements] [--markdown]"
                );
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other} (see --help)")),
        }
    }
    if options.runs == 0 || options.rows == 0 {
        fail("--rows and --runs must be positive");
    }
    options
}

async fn prepare(client: &Client, options: &Options) {
    let (columns, fill) = if options.wide {
        (WIDE_COLUMNS, WIDE_FILL)
    } else {
        (NARROW_COLUMNS, NARROW_FILL)
    };
    let fill = fill.replace("{rows}", &options.rows.to_string());
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pg_column_notify;
             CREATE EXTENSION IF NOT EXISTS tcn;
             {REFERENCE_FUNCTION}"
        ))
        .await
        .unwrap_or_else(|error| fail(&format!("set-up failed: {}", describe(&error))));
    for variant in VARIANTS {
        let table = variant.table;
        let install = variant.install.replace("{table}", table);
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} ({columns});
                 INSERT INTO {table} {fill};
                 {install};"
            ))
            .await
            .unwrap_or_else(|error| fail(&format!("preparing {table}: {}", describe(&error))));
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap_or_else(|error| fail(&format!("vacuum: {}", describe(&error))));
    }
    // The plain watch's payloads, one per row: the durable watch logs them (with its
    // `event_id`, taken out again), for the NOTIFY floor below.
    client
        .batch_execute(&format!(
            "TRUNCATE column_notify.events;
             UPDATE {durable} SET canceled = NOT canceled;
             DROP TABLE IF EXISTS {PAYLOADS};
             CREATE TABLE {PAYLOADS} AS
                 SELECT pg_catalog.regexp_replace(payload::text, '\"event_id\":[0-9]+,', '') AS payload
                 FROM column_notify.events;
             TRUNCATE column_notify.events;
             UPDATE {durable} SET canceled = NOT canceled;
             TRUNCATE column_notify.events;",
            durable = DURABLE_TABLE,
        ))
        .await
        .unwrap_or_else(|error| fail(&format!("keeping the payloads: {}", describe(&error))));
    client
        .batch_execute(&format!("VACUUM ANALYZE {DURABLE_TABLE}, {PAYLOADS}"))
        .await
        .unwrap_or_else(|error| fail(&format!("vacuum: {}", describe(&error))));
}

/// The table of the plain watch's payloads, and the statements that measure NOTIFY alone:
/// `pg_notify` of every payload in one transaction, less a scan of the same rows.
const PAYLOADS: &str = "bench_payloads";
const DURABLE_TABLE: &str = "bench_durable";
const NOTIFY_PAYLOADS: &str =
    "SELECT pg_catalog.count(pg_catalog.pg_notify('bench_floor', payload)) FROM bench_payloads";
const SCAN_PAYLOADS: &str = "SELECT pg_catalog.count(payload) FROM bench_payloads";
/// The floor's row: what any trigger sending these payloads pays to NOTIFY alone.
const NOTIFY_ALONE_LABEL: &str = "NOTIFY of the plain watch's payloads alone";

/// The time of `sql`, run as the timed statements are (after a checkpoint).
async fn timed(client: &Client, sql: &str, options: &Options) -> Duration {
    if options.checkpoints {
        client
            .batch_execute("CHECKPOINT")
            .await
            .unwrap_or_else(|error| fail(&format!("checkpoint: {}", describe(&error))));
    }
    let start = Instant::now();
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|error| fail(&format!("{sql}: {}", describe(&error))));
    start.elapsed()
}

/// The timed statement: one UPDATE of every row, or one UPDATE per row.
fn update_sql(table: &str, options: &Options) -> String {
    if options.one_row_statements {
        format!(
            "DO $$ BEGIN
               FOR i IN 1..{rows} LOOP
                 UPDATE {table} SET canceled = NOT canceled WHERE id = i;
               END LOOP;
             END $$",
            rows = options.rows
        )
    } else {
        format!("UPDATE {table} SET canceled = NOT canceled")
    }
}

async fn timed_update(client: &Client, table: &str, options: &Options) -> Duration {
    // Every run starts from the same state: no dead rows, an empty event log.
    client
        .batch_execute(&format!("VACUUM {table}"))
        .await
        .unwrap_or_else(|error| fail(&format!("vacuum: {}", describe(&error))));
    client
        .batch_execute("TRUNCATE column_notify.events")
        .await
        .unwrap_or_else(|error| fail(&format!("emptying the event log: {}", describe(&error))));
    // A server in steady state recycles its WAL segments; one just made creates (and fills
    // with zeros) every segment a run writes, a cost that follows the WAL a variant writes.
    // After a checkpoint the segments written so far are recycled for the next runs.
    timed(client, &update_sql(table, options), options).await
}

/// For each variant, round by round, its overhead divided by the plpgsql trigger's in the
/// same round (paired, so a slow spell of the machine weighs on both), sorted; empty for
/// the two references themselves.
fn per_round_ratios(samples: &[Vec<Duration>]) -> Vec<Vec<f64>> {
    let overhead = |variant: usize, round: usize| {
        samples[variant][round].as_secs_f64() - samples[0][round].as_secs_f64()
    };
    (0..samples.len())
        .map(|variant| {
            if variant < 2 {
                return Vec::new();
            }
            let mut ratios: Vec<f64> = (0..samples[0].len())
                .map(|round| overhead(variant, round) / overhead(1, round))
                .collect();
            ratios.sort_by(f64::total_cmp);
            ratios
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let mut options = parse_options();
    let client = connect(&database_url()).await;
    if let Err(error) = client.batch_execute("CHECKPOINT").await {
        eprintln!(
            "no CHECKPOINT before each run ({}): WAL segments the runs create weigh on them",
            describe(&error)
        );
        options.checkpoints = false;
    }
    let shape = match (options.wide, options.one_row_statements) {
        (true, false) => "wide rows (30 columns)",
        (true, true) => "wide rows (30 columns), one UPDATE statement per row",
        (false, false) => "appointments rows (5 columns)",
        (false, true) => "appointments rows (5 columns), one UPDATE statement per row",
    };
    eprintln!(
        "preparing {} {shape} in {} tables...",
        options.rows,
        VARIANTS.len()
    );
    prepare(&client, &options).await;

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    // NOTIFY alone, round by round: pg_notify of the plain watch's payloads less the scan.
    let mut notify_alone: Vec<(Duration, f64)> = Vec::new();
    for round in 0..options.runs {
        // Rotate the order each round, so no variant always runs first or last.
        for offset in 0..VARIANTS.len() {
            let index = (round + offset) % VARIANTS.len();
            let elapsed = timed_update(&client, VARIANTS[index].table, &options).await;
            samples[index].push(elapsed);
        }
        let notifying = timed(&client, NOTIFY_PAYLOADS, &options).await;
        let scanning = timed(&client, SCAN_PAYLOADS, &options).await;
        notify_alone.push((
            notifying,
            (notifying.as_secs_f64() - scanning.as_secs_f64()),
        ));
        eprintln!("round {}/{} done", round + 1, options.runs);
    }

    let mut per_round = per_round_ratios(&samples);
    let plpgsql_overheads: Vec<f64> = samples[1]
        .iter()
        .zip(&samples[0])
        .map(|(plpgsql, none)| plpgsql.as_secs_f64() - none.as_secs_f64())
        .collect();
    let mut medians: Vec<Duration> = samples.iter_mut().map(|s| median(s)).collect();
    let baseline = medians[0];
    let per_row_us =
        |m: Duration| (m.as_secs_f64() - baseline.as_secs_f64()) * 1e6 / options.rows as f64;
    let plpgsql = per_row_us(medians[1]);
    let tcn = per_row_us(medians[2]);
    let title = format!(
        "{} {shape}, median of {} alternating runs",
        options.rows, options.runs
    );
    if options.markdown {
        println!("#### {title}\n");
        println!(
            "| trigger | median statement time | overhead per row | ÷ plpgsql's | ÷ tcn's \
             | ÷ plpgsql's round by round: median (range) |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    } else {
        println!("{title}");
    }
    // The NOTIFY floor as one more row: its overhead is its own (pg_notify less the scan),
    // not a time over the table without a trigger.
    let mut floor_rounds: Vec<f64> = notify_alone
        .iter()
        .zip(&plpgsql_overheads)
        .map(|((_, overhead), plpgsql)| overhead / plpgsql)
        .collect();
    floor_rounds.sort_by(f64::total_cmp);
    per_round.push(floor_rounds);
    let mut floor_overheads: Vec<f64> =
        notify_alone.iter().map(|(_, overhead)| *overhead).collect();
    floor_overheads.sort_by(f64::total_cmp);
    let floor_overhead = floor_overheads[floor_overheads.len() / 2];
    medians.push(median(
        &mut notify_alone
            .iter()
            .map(|(time, _)| *time)
            .collect::<Vec<_>>(),
    ));
    let labels = VARIANTS
        .iter()
        .map(|variant| variant.label)
        .chain([NOTIFY_ALONE_LABEL]);
    for ((label, &m), rounds) in labels.zip(&medians).zip(&per_round) {
        let overhead = match label {
            NOTIFY_ALONE_LABEL => floor_overhead * 1e6 / options.rows as f64,
            _ => per_row_us(m),
        };
        let spread = match rounds.as_slice() {
            [] => "-".to_owned(),
            [low, .., high] => format!("{:.2} ({low:.2}–{high:.2})", rounds[rounds.len() / 2]),
            [only] => format!("{only:.2}"),
        };
        let ratio = |reference: f64| {
            if label == "no trigger" || reference <= 0.0 {
                "-".to_owned()
            } else {
                format!("{:.2}", overhead / reference)
            }
        };
        let (to_plpgsql, to_tcn) = (ratio(plpgsql), ratio(tcn));
        let time = m.as_secs_f64() * 1e3;
        if options.markdown {
            println!("| {label} | {time:.1} ms | {overhead:.2} µs | {to_plpgsql} | {to_tcn} | {spread} |");
        } else {
            println!(
                "  {label:<42} {time:>9.1} ms  {overhead:>6.2} µs/row  ÷plpgsql {to_plpgsql:>5}  ÷tcn {to_tcn:>5}  rounds {spread}"
            );
        }
    }
    if options.markdown {
        println!();
    }
    let tables = VARIANTS
        .iter()
        .map(|variant| variant.table)
        .chain([PAYLOADS]);
    for table in tables {
        if let Err(error) = client.batch_execute(&format!("DROP TABLE {table}")).await {
            eprintln!("could not drop {table}: {}", describe(&error));
        }
    }
}
