# pg_column_notify. `make demo` and `make test` do every step they need themselves.
# DATABASE_URL set: demo and integration tests use that server instead of the private one.

PG_CONFIG ?= /usr/bin/pg_config
export PG_CONFIG

# cargo pgrx writes into PostgreSQL's folders, which needs root.
SUDO_FLAG := $(if $(filter 0,$(shell id -u)),,--sudo)

.PHONY: all setup install db stop demo test pg-test integration-test lint bench bench-quick

all: install

setup:
	@bash scripts/setup.sh

# cargo pgrx writes the current version's script and the upgrade scripts; the install
# scripts of earlier releases (kept for ALTER EXTENSION ... UPDATE from them) are copied here.
install: setup
	cargo pgrx install --release --pg-config $(PG_CONFIG) $(SUDO_FLAG)
	$(if $(SUDO_FLAG),sudo) install -m 644 sql/pg_column_notify--0.1.0.sql sql/pg_column_notify--0.2.0.sql \
		"$$($(PG_CONFIG) --sharedir)/extension/"

db: install
	@bash scripts/cluster.sh start
	@echo "DATABASE_URL=$$(bash scripts/cluster.sh url)"

stop:
	@bash scripts/cluster.sh stop

demo: install
	@cargo build -q -p appointments_demo
	@bash scripts/with-database.sh target/debug/appointments_demo

# The #[pg_test] suite runs first: cargo-pgrx installs a test build of the extension,
# which `install` then replaces with the release build the integration tests use.
test: setup
	$(MAKE) pg-test
	$(MAKE) install
	$(MAKE) integration-test

pg-test: setup
	bash scripts/pg-test.sh

integration-test:
	bash scripts/with-database.sh cargo test -p integration_tests -p column_notify_listener

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: install
	bash scripts/bench.sh

bench-quick: install
	bash scripts/bench.sh --quick
