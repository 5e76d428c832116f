#!/bin/sh
# Serves /www (an emptyDir) on 8080 and writes what the pipeline's stats
# page at $STATS_URL says into /www/index.html every 2 s.
set -u
echo "pipeline: ?" >/www/index.html
httpd -p 8080 -h /www
# busybox's `timeout`, not wget's own -T: that crashes the busybox of the
# local registry.
while :; do
	s=$(timeout 5 wget -q -O - "$STATS_URL" 2>/dev/null) || s="?"
	echo "pipeline $s" >/www/index.html.new && mv /www/index.html.new /www/index.html
	sleep 2
done
