-- The appointments example: a table, and a watch on its "canceled" column.
CREATE EXTENSION IF NOT EXISTS pg_column_notify;

CREATE TABLE IF NOT EXISTS appointments (
    id bigserial PRIMARY KEY,
    canceled boolean NOT NULL DEFAULT false,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

SELECT watch_column('appointments', 'canceled', 'appointments_canceled_changed');
