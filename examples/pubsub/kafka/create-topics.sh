#!/bin/sh
# Creates the example's topics once the broker answers (the `topics` Job):
# each with $PARTITIONS partitions and one replica, left alone if it exists.
# A broker not up yet (or its name not in DNS yet: the pod is not ready) is
# waited for, up to $ATTEMPTS tries 3 s apart; then the Job's retry takes over.
#
#   KAFKA_BOOTSTRAP   kafka-0.kafka.pubsub:9092
#   TOPICS            "tabs.orders tabs.deliveries"
set -eu
home=${KAFKA_HOME:-/opt/kafka}
bootstrap=${KAFKA_BOOTSTRAP:-kafka-0.kafka.pubsub:9092}
topics=${TOPICS:-tabs.orders tabs.deliveries}
partitions=${PARTITIONS:-4}
attempts=${ATTEMPTS:-40}
# The admin client's settings dump and connection retries are not news here.
export KAFKA_LOG_LEVEL=${KAFKA_LOG_LEVEL:-WARN}

topic() {
	java -cp "$home/libs/*" -Dlog4j2.configurationFile="$home/config/log4j2.properties" \
		-Xms32m -Xmx128m -XX:TieredStopAtLevel=1 \
		org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
		--command-config "$home/config/admin.properties" "$@"
}

for name in $topics; do
	try=1
	until topic --create --if-not-exists --topic "$name" \
		--partitions "$partitions" --replication-factor 1; do
		if [ "$try" -ge "$attempts" ]; then
			echo "topics: the broker at $bootstrap did not answer after $attempts tries" >&2
			exit 1
		fi
		echo "topics: the broker at $bootstrap is not answering yet (try $try of $attempts)"
		try=$((try + 1))
		sleep 3
	done
	echo "topics: $name is there"
done
