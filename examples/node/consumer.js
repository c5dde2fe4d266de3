// A Node.js consumer of the appointments example's changes, with `pg` from npm.
//
// The payload is JSON over LISTEN/NOTIFY, so nothing but a PostgreSQL driver is needed. It
// handles every payload shape the README documents: a change of its own, a batch
// ({"changes": [...]}), a truncated change (reload the row), an INSERT (old is null) and a
// DELETE (new is null); a payload that is not a change (someone else's NOTIFY) is reported
// on stderr and skipped.
//
// Usage: DATABASE_URL=postgres://... node consumer.js [--channel C] [--count N]
"use strict";

const { Client } = require("pg");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

// The changes a notification carries: the elements of a batch, else the payload.
function changesOf(payload) {
  let value;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "changes" && Array.isArray(value.changes)) {
      return value.changes;
    }
  }
  return [value];
}

// One line for one change, the same line the Python consumer prints. Numbers are printed
// as Python's json.dumps prints them for the values of this table (ids and booleans).
function describe(change) {
  if (!change || typeof change !== "object" || !("id" in change)) {
    return null;
  }
  const key = JSON.stringify(change.id);
  const { old: before, new: after } = change;
  if (change.truncated) {
    return `appointment ${key} changed (payload truncated: reload the row)`;
  }
  if (before == null && after != null) {
    return `appointment ${key} inserted, canceled=${JSON.stringify(after.canceled)}`;
  }
  if (after == null && before != null) {
    return `appointment ${key} deleted`;
  }
  return `appointment ${key} canceled: ${JSON.stringify(before.canceled)} -> ${JSON.stringify(after.canceled)}`;
}

async function main() {
  const channel = option("channel", "appointments_canceled_changed");
  const count = option("count") === undefined ? null : Number(option("count"));
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  let printed = 0;
  client.on("notification", (note) => {
    const changes = changesOf(note.payload);
    const lines = changes === null ? [null] : changes.map(describe);
    for (const line of lines) {
      if (line === null) {
        console.error(`ignored a payload that is not a change: ${JSON.stringify(note.payload)}`);
        continue;
      }
      process.stdout.write(`${line}\n`);
      printed += 1;
      if (count !== null && printed >= count) {
        client.end().then(() => process.exit(0));
        return;
      }
    }
  });
  await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
  console.error(`listening on ${channel}`);
}

main().catch((error) => {
  console.error(`error: ${error.message}`);
  process.exit(1);
});
