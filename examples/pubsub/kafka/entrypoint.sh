#!/bin/sh
# Starts the broker, first formatting its KRaft storage when the data folder
# (log.dirs in the config) has none yet: an emptyDir is empty on every new pod.
# Extra arguments go to kafka.Kafka (`--override name=value`).
#
#   KAFKA_HOME        /opt/kafka: libs/ and config/ below it
#   KAFKA_CONFIG      $KAFKA_HOME/config/server.properties
#   KAFKA_HEAP_OPTS   -Xms128m -Xmx256m
set -eu
home=${KAFKA_HOME:-/opt/kafka}
config=${KAFKA_CONFIG:-$home/config/server.properties}
# One node, one cluster: a fixed id keeps the format step free of any state.
cluster_id=${KAFKA_CLUSTER_ID:-IhMmbRowSb6-Z7Elva9cgA}
data=$(sed -n 's/^log\.dirs=//p' "$config")
: "${data:?no log.dirs in $config}"

# A small heap (the limit in k8s/kafka.yaml leaves room for metaspace, the
# page cache and direct buffers); exit on OOM so the kubelet restarts it.
java_opts="-Dlog4j2.configurationFile=$home/config/log4j2.properties -Djava.awt.headless=true
	${KAFKA_HEAP_OPTS:--Xms128m -Xmx256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError"

if [ ! -f "$data/meta.properties" ]; then
	echo "kafka: formatting $data (cluster $cluster_id)"
	# shellcheck disable=SC2086 # the options are separate words
	java -cp "$home/libs/*" $java_opts kafka.tools.StorageTool format \
		--cluster-id "$cluster_id" --config "$config"
fi
# shellcheck disable=SC2086
exec java -cp "$home/libs/*" $java_opts kafka.Kafka "$config" "$@"
