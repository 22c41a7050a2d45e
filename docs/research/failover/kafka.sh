#!/usr/bin/env bash
# Starts (up) or removes (down) a single-node Kafka 4.1 broker for the failover experiment,
# with stock group/transaction settings, listening on 127.0.0.1:${PORT:-39092}.
set -euo pipefail
name=kastor-failover-research
port=${PORT:-39092}
image=${KAFKA_IMAGE:-kastor/kafka:4.1.1}
case ${1:-up} in
up)
  docker rm -f $name >/dev/null 2>&1 || true
  docker run -d --name $name -p 127.0.0.1:$port:$port \
    -e CLUSTER_ID=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | sed 's/^-/A/') \
    -e KAFKA_NODE_ID=1 -e KAFKA_PROCESS_ROLES=broker,controller \
    -e KAFKA_LISTENERS=CLIENT://0.0.0.0:$port,BROKER://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093 \
    -e KAFKA_ADVERTISED_LISTENERS=CLIENT://127.0.0.1:$port,BROKER://localhost:19092 \
    -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CLIENT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT \
    -e KAFKA_INTER_BROKER_LISTENER_NAME=BROKER -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER \
    -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093 -e KAFKA_LOG_DIRS=/tmp/kraft-combined-logs \
    -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 -e KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS=10 \
    -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1 \
    -e KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS=10 \
    -e KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR=1 -e KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR=1 \
    -e KAFKA_DEFAULT_REPLICATION_FACTOR=1 -e KAFKA_MIN_INSYNC_REPLICAS=1 \
    -e KAFKA_AUTO_CREATE_TOPICS_ENABLE=false -e "KAFKA_HEAP_OPTS=-Xms256m -Xmx768m" \
    "$image" >/dev/null
  echo "127.0.0.1:$port"
  ;;
down) docker rm -f $name >/dev/null ;;
esac
