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
	nats-server -a 127.0.0.1 -p 4222 -m 8222 -js -sd "$state/nats" -P "$state/nats.pid" \
		>"$state/nats.log" 2>&1 &
	wait_for nats $! nats_ping
fi

echo "export POSTS_CHROMIUM=/usr/bin/chromium"
echo "export POSTS_MYSQL_DSN='hexapost:hexapost@tcp(127.0.0.1:3306)/hexapost?parseTime=true&interpolateParams=true'"
echo "export POSTS_REDIS_URL=redis://127.0.0.1:6379/0"
echo "export POSTS_NATS_URL=nats://127.0.0.1:4222"
