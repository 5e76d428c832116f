#!/bin/sh
# Serves /www (an emptyDir) on 8080 and writes the count ingest answers at
# $INGEST_URL into /www/index.html every 2 s ("events: ?" while ingest is away).
set -u
echo "events: ?" >/www/index.html
httpd -p 8080 -h /www
# busybox's `timeout`, not wget's own -T: that crashes the busybox of the
# local registry.
while :; do
	n=$(timeout 5 wget -q -O - "$INGEST_URL" 2>/dev/null) || n="?"
	echo "events: $n" >/www/index.html.new && mv /www/index.html.new /www/index.html
	sleep 2
done
