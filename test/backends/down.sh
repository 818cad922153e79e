#!/usr/bin/env bash
# Stops the backends that up.sh started (by their pid files). Idempotent.
#
#   bash test/backends/down.sh [NAME...]   # NAME: ferretdb nats redis mariadb postgres; default all
set -uo pipefail
state="$(cd "$(dirname "$0")" && pwd)/.state"
only=" ${*:-ferretdb nats redis mariadb postgres} "
# FerretDB before the PostgreSQL it uses.
for entry in "ferretdb:$state/ferretdb.pid" "nats:$state/nats.pid" "redis:$state/redis.pid" \
	"mariadb:/run/mysqld/hexapost-test.pid"; do
	name=${entry%%:*} pidfile=${entry#*:}
	[[ $only == *" $name "* ]] || continue
	[ -f "$pidfile" ] || continue
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		echo "backends: stopped $name" >&2
	fi
	rm -f "$pidfile"
done
# PostgreSQL keeps its own pid file in its data directory: a fast shutdown, waited for.
pg_data="$state/postgres"
if [[ $only == *" postgres "* ]] && [ -f "$pg_data/postmaster.pid" ] &&
	(cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- \
		/usr/lib/postgresql/15/bin/pg_ctl stop -D "$pg_data" -m fast -s -t 60) >/dev/null 2>&1; then
	echo "backends: stopped postgres" >&2
fi
