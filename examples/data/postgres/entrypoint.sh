#!/bin/sh
# Starts PostgreSQL, first making its cluster in an empty $PGDATA: superuser
# `postgres` with password $POSTGRES_PASSWORD, scram-sha-256 over TCP from any
# address, trust on the local socket only. Extra arguments go to postgres.
set -eu
: "${PGDATA:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD, the superuser password}"
	# Beside $PGDATA, not in it: initdb wants an empty or missing directory.
	pwfile=$(dirname "$PGDATA")/.initdb-password
	(umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile")
	initdb --pgdata="$PGDATA" --username=postgres --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
	rm -f "$pwfile"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
