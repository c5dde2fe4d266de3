# pg_column_notify. `make demo` and `make test` do every step they need themselves.
# DATABASE_URL set: demo and integration tests use that server instead of the private one.
#
# The PostgreSQL used: PG_CONFIG, Debian's 15 (/usr/bin/pg_config) by default. PG=14..18
# uses the project's own server of that major instead, fetched into a cache folder by
# scripts/fetch-postgres.sh when needed (`make test PG=17`). The extension is built with the
# Cargo feature of PG_CONFIG's major; each major has its own private cluster and port.

ifdef PG
PG_CONFIG := $(shell bash scripts/fetch-postgres.sh $(PG))
ifeq ($(PG_CONFIG),)
$(error cannot get the project's PostgreSQL $(PG) (see the messages above))
endif
endif
PG_CONFIG ?= /usr/bin/pg_config
export PG_CONFIG
PG_MAJOR := $(shell $(PG_CONFIG) --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
ifeq ($(PG_MAJOR),)
$(error $(PG_CONFIG) --version does not name a PostgreSQL major)
endif

# cargo-pgrx's list of servers (`cargo pgrx init`) for any server but the default is the
# project's own, beside the fetched servers, so ~/.pgrx keeps pg15 = Debian's.
ifneq ($(PG_CONFIG),/usr/bin/pg_config)
PGRX_HOME ?= $(shell bash scripts/fetch-postgres.sh --cache-dir)/pgrx
export PGRX_HOME
endif

# cargo pgrx writes into PostgreSQL's folders; sudo when they are not writable.
SUDO_FLAG := $(if $(shell test -w "$$($(PG_CONFIG) --pkglibdir)" && echo yes),,--sudo)

.PHONY: all setup install install-cli db stop demo test pg-test integration-test package packages lint bench bench-quick

all: install

setup:
	@bash scripts/setup.sh

# cargo pgrx writes the current version's script and the upgrade scripts; the install
# scripts of earlier releases (kept for ALTER EXTENSION ... UPDATE from them) are copied here.
install: setup
	cargo pgrx install --release --pg-config $(PG_CONFIG) $(SUDO_FLAG)
	$(if $(SUDO_FLAG),sudo) install -m 644 sql/pg_column_notify--0.1.0.sql sql/pg_column_notify--0.2.0.sql sql/pg_column_notify--0.3.0.sql sql/pg_column_notify--0.4.0.sql \
		"$$($(PG_CONFIG) --sharedir)/extension/"

# The column-notify command, into cargo's bin folder (~/.cargo/bin, or CARGO_INSTALL_ROOT).
install-cli:
	cargo install --locked --path listener

db: install
	@bash scripts/cluster.sh start
	@echo "DATABASE_URL=$$(bash scripts/cluster.sh url)"

stop:
	@bash scripts/cluster.sh stop

demo: install
	@cargo build -q -p appointments_demo -p column_notify_listener
	@bash scripts/with-database.sh bash scripts/demo.sh

# The #[pg_test] suite runs first: cargo-pgrx installs a test build of the extension,
# which `install` then replaces with the release build the integration tests use.
test: setup
	$(MAKE) pg-test
	$(MAKE) install
	$(MAKE) integration-test
	bash scripts/package-test.sh
	$(MAKE) install

# The Debian package of PG_CONFIG's major (postgresql-NN-column-notify, in target/packages);
# `make packages` builds one for every supported major.
package: setup
	bash scripts/package.sh

packages:
	$(MAKE) package
	for major in 14 16 17 18; do $(MAKE) package PG=$$major || exit 1; done

pg-test: setup
	bash scripts/pg-test.sh

# The relay's tests start nats-servers of their own (scripts/fetch-nats.sh fetches it once).
# The listener's unit tests also run without TLS (its tls-rustls feature off).
integration-test:
	NATS_SERVER="$$(bash scripts/fetch-nats.sh)" \
		bash scripts/with-database.sh cargo test -p integration_tests -p column_notify_listener
	cargo test -p column_notify_listener --lib --no-default-features

# With PG= (or a PG_CONFIG other than the default) the extension is linted with that
# major's feature; the rest of the workspace does not depend on the major.
# With Debian's 15 also the listener without TLS, and the crate as crates.io would get it:
# packaged, then built from the package.
lint:
	cargo fmt --all --check
ifeq ($(PG_CONFIG),/usr/bin/pg_config)
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p column_notify_listener --no-default-features --all-targets -- -D warnings
	cargo package -q -p column_notify_listener --locked --allow-dirty
else
	PGRX_PG_CONFIG_PATH=$(PG_CONFIG) cargo clippy -p pg_column_notify --all-targets \
		--no-default-features --features "pg$(PG_MAJOR) pg_test" -- -D warnings
endif

bench: install
	bash scripts/bench.sh

bench-quick: install
	bash scripts/bench.sh --quick
