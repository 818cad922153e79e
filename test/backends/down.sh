#!/usr/bin/env bash
# Stops the backends that up.sh started (by their pid files). Idempotent.
set -uo pipefail
state="$(cd "$(dirname "$0")" && pwd)/.state"
for pidfile in "$state/nats.pid" "$state/redis.pid" /run/mysqld/hexapost-test.pid; do
	name=$(basename "$pidfile" .pid)
	[ -f "$pidfile" ] || continue
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		echo "backends: stopped $name" >&2
	fi
	rm -f "$pidfile"
done
