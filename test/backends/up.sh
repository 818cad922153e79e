#!/usr/bin/env bash
# Installs (apt) and starts, on 127.0.0.1 and without systemd, every backend the tests use, waits
# until each answers a real round trip, and prints the POSTS_* exports for them on stdout:
#
#   eval "$(bash test/backends/up.sh)"
#
# Idempotent: a backend that already answers is left alone. Progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
state="$here/.state"
mkdir -p "$state"

log() { echo "backends: $*" >&2; }

# need PKG... installs the Debian packages that are missing, running apt-get update at most once.
updated=""
need() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	if [ -z "$updated" ]; then
		apt-get update -qq >>"$state/apt.log" 2>&1
		updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
		>>"$state/apt.log" 2>&1 || { tail -n 30 "$state/apt.log" >&2; exit 1; }
}

# wait_for NAME PID CMD...: retries CMD for up to 30 s, giving up at once if PID has exited.
wait_for() {
	local name=$1 pid=$2
	shift 2
	for _ in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	log "$name did not answer; last lines of its log:"
	tail -n 30 "$state/$name.log" >&2 || true
	exit 1
}

# --- headless browser, for the /docs test ---------------------------------------------------
need chromium chromium-driver

# --- buildah, for the test of the container image (test/image) ------------------------------
need buildah

# --- MariaDB --------------------------------------------------------------------------------
mysql_sock=/run/mysqld/hexapost-test.sock # mysqld must be able to create it
mysql_ping() { mariadb-admin --socket="$mysql_sock" -uroot ping; }
if ! mysql_ping >/dev/null 2>&1; then
	need mariadb-server mariadb-client
	install -d -o mysql -g mysql /run/mysqld "$state/mysql"
	if [ ! -d "$state/mysql/mysql" ]; then
		log "initialising MariaDB data directory"
		mariadb-install-db --user=mysql --datadir="$state/mysql" --auth-root-authentication-method=socket \
			--skip-test-db >"$state/mariadb-install.log" 2>&1
	fi
	log "starting MariaDB on 127.0.0.1:3306"
	mariadbd --user=mysql --datadir="$state/mysql" --bind-address=127.0.0.1 --port=3306 \
		--socket="$mysql_sock" --pid-file=/run/mysqld/hexapost-test.pid --innodb-buffer-pool-size=256M \
		--max-connections=500 >"$state/mariadb.log" 2>&1 &
	wait_for mariadb $! mysql_ping
	mariadb --socket="$mysql_sock" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'hexapost'@'127.0.0.1' IDENTIFIED BY 'hexapost';
CREATE USER IF NOT EXISTS 'hexapost'@'localhost' IDENTIFIED BY 'hexapost';
GRANT ALL PRIVILEGES ON `hexapost%`.* TO 'hexapost'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `hexapost%`.* TO 'hexapost'@'localhost';
CREATE DATABASE IF NOT EXISTS hexapost;
SQL
fi

# --- Redis ----------------------------------------------------------------------------------
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
if ! redis_ping; then
	need redis-server redis-tools
	log "starting Redis on 127.0.0.1:6379"
	# Append-only file on: the broker fault tests restart Redis and expect the streams back.
	redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --dir "$state" \
		--pidfile "$state/redis.pid" --logfile "$state/redis.log" --save '' --appendonly yes \
		--appendfsync everysec >&2
	wait_for redis "" redis_ping
fi

# --- NATS with JetStream --------------------------------------------------------------------
nats_ping() { curl -fsS "http://127.0.0.1:8222/healthz?js-enabled-only=true"; }
if ! nats_ping >/dev/null 2>&1; then
	need nats-server curl
	log "starting NATS with JetStream on 127.0.0.1:4222"
	mkdir -p "$state/nats"
	# One P: on a small machine shared with every other backend, hexapost and the load tool,
	# the server's stalls before acknowledging a publish are shorter with it.
	GOMAXPROCS=1 nats-server -a 127.0.0.1 -p 4222 -m 8222 -js -sd "$state/nats" -P "$state/nats.pid" \
		>"$state/nats.log" 2>&1 &
	wait_for nats $! nats_ping
fi
# nats-server removes its account's streams directory when the account's last stream is deleted,
# and a stream created at that moment fails ("could not create storage directory"); the suites
# create and delete streams side by side. A stream that stays keeps the directory. Created over
# the client protocol (no NATS client is installed); creating it again is a no-op.
nats_keep_stream() {
	local cfg='{"name":"HEXAPOST_TEST_KEEP","subjects":["hexapost.test.keep"],"storage":"file"}' reply
	exec 3<>/dev/tcp/127.0.0.1/4222 || return 1
	printf 'CONNECT {"verbose":false}\r\nSUB _INBOX.keep 1\r\nPUB $JS.API.STREAM.CREATE.HEXAPOST_TEST_KEEP _INBOX.keep %d\r\n%s\r\n' \
		"${#cfg}" "$cfg" >&3
	reply=$(timeout 5 grep -a -m1 -e '"config"' -e '"error"' <&3)
	exec 3<&-
	case $reply in *'"error"'*|'') log "NATS: keeping stream not created: ${reply:-no answer}"; return 1 ;; esac
}
nats_keep_stream || exit 1

# --- PostgreSQL (for FerretDB) --------------------------------------------------------------
# A private cluster in $state/postgres, owned by the postgres user (the server refuses to run as
# root), its Unix socket in /run/postgresql; TCP on 127.0.0.1:5432 with password auth. Every
# FerretDB the tests start keeps its own connection pool here, so the default 100 connections
# run out when the suites run side by side.
pgbin=/usr/lib/postgresql/15/bin
pg_data="$state/postgres"
pg_sock=/run/postgresql
pg_ping() { "$pgbin/pg_isready" -q -h 127.0.0.1 -p 5432; }
# FerretDB's database; the fault suite reaches into PostgreSQL with psql to make a projection fail.
pg_url=postgres://ferretdb:ferretdb@127.0.0.1:5432/ferretdb
# The tests' private FerretDBs each get a database of their own: the role needs CREATEDB.
# FerretDB 1.24 stores each collection as a table with one jsonb column and pushes a filter on
# _id down as `_jsonb->'_id' @> value`, which its own (btree) _id index cannot serve: every
# lookup by _id is a scan of the whole collection, growing with it, where MongoDB uses the _id
# index. An event trigger gives every collection table FerretDB creates a GIN index that serves
# exactly that expression, so the test server finds documents by _id the way MongoDB does. It is
# installed in the ferretdb database and in template1, which the private databases are copied from.
# Two settings keep that index in use as the collections grow:
# - fastupdate off: by default a GIN index queues new entries in a pending list that every lookup
#   reads whole, so every lookup after a burst of inserts reads many pages;
# - plan_cache_mode force_custom_plan for FerretDB's role: FerretDB names the field as a parameter
#   (`_jsonb->$1 @> $2`), and after five runs of a prepared statement PostgreSQL may keep a
#   generic plan, which cannot match `_jsonb->'_id'` to the index and scans the table; chosen
#   while the table is small, it then reads every row of the history on every lookup.
pg_ferretdb() {
	[ "$("$pgbin/psql" -XqtA -d "$pg_url" -c "SELECT rolcreatedb AND current_setting('plan_cache_mode') = 'force_custom_plan'
		AND EXISTS (SELECT FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid
			WHERE e.evtname = 'ferretdb_index_id' AND p.prosrc LIKE '%fastupdate = off%')
		FROM pg_roles WHERE rolname = current_user")" = t ]
}
as_postgres() { (cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"); }
if ! pg_ferretdb >/dev/null 2>&1; then
	if ! pg_ping; then
		need postgresql
		install -d -o postgres -g postgres -m 2775 "$pg_sock"
		install -d -o postgres -g postgres -m 0700 "$pg_data"
		if [ ! -f "$pg_data/PG_VERSION" ]; then
			log "initialising PostgreSQL data directory"
			as_postgres "$pgbin/initdb" -D "$pg_data" -U postgres -E UTF8 --no-locale \
				--auth-local=peer --auth-host=scram-sha-256 >"$state/postgres-initdb.log" 2>&1 ||
				{ tail -n 30 "$state/postgres-initdb.log" >&2; exit 1; }
		fi
		pg_pid=$(head -n1 "$pg_data/postmaster.pid" 2>/dev/null || true)
		if [ -n "$pg_pid" ] && [ "$(readlink "/proc/$pg_pid/exe" 2>/dev/null)" = "$pgbin/postgres" ]; then
			log "waiting for the PostgreSQL already running as pid $pg_pid"
		else
			log "starting PostgreSQL on 127.0.0.1:5432"
			# setsid: not killed with the caller's process group; setsid and setpriv exec, so $! is
			# the postmaster. Its pid file is $pg_data/postmaster.pid (down.sh uses pg_ctl).
			(cd / && exec setsid setpriv --reuid=postgres --regid=postgres --init-groups -- \
				"$pgbin/postgres" -D "$pg_data" -k "$pg_sock" -h 127.0.0.1 -p 5432 -c max_connections=400) \
				>"$state/postgres.log" 2>&1 &
			pg_pid=$!
		fi
		wait_for postgres "$pg_pid" pg_ping
	fi
	as_postgres "$pgbin/psql" -Xq -v ON_ERROR_STOP=1 -h "$pg_sock" -p 5432 -U postgres -d postgres >&2 <<'SQL'
SELECT 'CREATE ROLE ferretdb' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ferretdb')\gexec
ALTER ROLE ferretdb LOGIN CREATEDB PASSWORD 'ferretdb';
ALTER ROLE ferretdb SET plan_cache_mode = force_custom_plan;
SELECT 'CREATE DATABASE ferretdb OWNER ferretdb' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ferretdb')\gexec
SQL
	for db in template1 ferretdb; do
		as_postgres "$pgbin/psql" -Xq -v ON_ERROR_STOP=1 -h "$pg_sock" -p 5432 -U postgres -d "$db" >&2 <<'SQL'
SET client_min_messages = warning;
CREATE OR REPLACE FUNCTION ferretdb_index_id() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE t record;
BEGIN
	FOR t IN SELECT c.oid, c.relname, n.nspname FROM pg_event_trigger_ddl_commands() d
		JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE d.object_type = 'table' AND c.relname NOT LIKE '\_ferretdb\_%'
	LOOP
		IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = t.oid AND attname = '_jsonb' AND NOT attisdropped) THEN
			EXECUTE format('CREATE INDEX %I ON %I.%I USING gin ((_jsonb -> ''_id'') jsonb_path_ops) WITH (fastupdate = off)',
				left(t.relname, 50) || '_id_gin', t.nspname, t.relname);
		END IF;
	END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS ferretdb_index_id;
CREATE EVENT TRIGGER ferretdb_index_id ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
	EXECUTE FUNCTION ferretdb_index_id();
SQL
	done
fi

# --- FerretDB (MongoDB wire protocol on PostgreSQL) -----------------------------------------
# Built from test/backends/ferretdb, its own Go module (FerretDB's dependencies stay out of the
# main module's go.mod); the same binary's `ping` subcommand is the readiness check.
ferretdb_bin="$state/ferretdb"
mongo_uri=mongodb://127.0.0.1:27017/hexapost
ferretdb_ping() { "$ferretdb_bin" ping "$mongo_uri"; }
if ! ferretdb_ping >/dev/null 2>&1; then
	fdb_pid=$(cat "$state/ferretdb.pid" 2>/dev/null || true)
	if [ -n "$fdb_pid" ] && [[ "$(readlink "/proc/$fdb_pid/exe" 2>/dev/null)" == "$ferretdb_bin"* ]]; then
		# e.g. PostgreSQL was down: FerretDB reconnects by itself.
		log "waiting for the FerretDB already running as pid $fdb_pid"
	else
		src="$here/ferretdb"
		if ! [ "$ferretdb_bin" -nt "$src/main.go" ] || ! [ "$ferretdb_bin" -nt "$src/go.mod" ] ||
			! [ "$ferretdb_bin" -nt "$src/go.sum" ]; then
			command -v go >/dev/null || { log "go is needed to build FerretDB"; exit 1; }
			log "building FerretDB (a minute or two when the build cache is cold)"
			# GOFLAGS replaced, not extended: the environment's (e.g. -mod=vendor) is for the main module.
			# On the service's own toolchain (go.mod's toolchain line), whatever GOTOOLCHAIN the machine sets.
			(cd "$src" && GOTOOLCHAIN=$(sed -n 's/^toolchain //p' "$here/../../go.mod") \
				GOFLAGS=-buildvcs=false GOWORK=off go build -o "$ferretdb_bin.tmp" .) >&2
			mv -f "$ferretdb_bin.tmp" "$ferretdb_bin"
		fi
		log "starting FerretDB on 127.0.0.1:27017"
		setsid "$ferretdb_bin" serve -listen 127.0.0.1:27017 \
			-postgresql-url "$pg_url" \
			>"$state/ferretdb.log" 2>&1 &
		fdb_pid=$!
		echo "$fdb_pid" >"$state/ferretdb.pid"
	fi
	wait_for ferretdb "$fdb_pid" ferretdb_ping
fi

echo "export HEXAPOST_TEST_CHROMIUM=/usr/bin/chromium"
echo "export POSTS_MYSQL_DSN='hexapost:hexapost@tcp(127.0.0.1:3306)/hexapost?parseTime=true&interpolateParams=true'"
echo "export POSTS_REDIS_URL=redis://127.0.0.1:6379/0"
echo "export POSTS_NATS_URL=nats://127.0.0.1:4222"
echo "export POSTS_MONGO_URI=$mongo_uri"
echo "export HEXAPOST_TEST_POSTGRES_URL=$pg_url"
