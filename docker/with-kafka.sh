#!/usr/bin/env bash
# Runs a command (usually `go test`) with a Kafka test bed ready:
#   - KAFKA_BROKERS set: nothing is started; tests use that cluster.
#   - otherwise the Docker engine is made ready (docker/ensure-docker.sh) and KAFKA_IMAGE is
#     chosen: the value given, else the official apache/kafka image when it is present or
#     can be pulled, else the image built offline by docker/build-kafka-image.sh (built or
#     reused). TESTCONTAINERS_RYUK_DISABLED defaults to true (Ryuk cannot be pulled offline;
#     kafkatest removes its own containers).
# Usage: docker/with-kafka.sh go test ./...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[kafka] %s\n' "$*" >&2; }

if [[ -n ${KAFKA_BROKERS-} ]]; then
  log "using the cluster at KAFKA_BROKERS=$KAFKA_BROKERS"
  exec "$@"
fi

if ! "$here/ensure-docker.sh"; then
  log "no Docker engine: integration tests will skip (or fail under CI / KASTOR_REQUIRE_DOCKER)"
  exec "$@"
fi

version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
official=apache/kafka:$version
local_image=${KASTOR_KAFKA_IMAGE:-kastor/kafka:$version}
if [[ -z ${KAFKA_IMAGE-} ]]; then
  if docker image inspect "$official" >/dev/null 2>&1 || docker pull -q "$official" >/dev/null 2>&1; then
    KAFKA_IMAGE=$official
  else
    log "$official cannot be pulled here: using the offline build $local_image"
    KAFKA_IMAGE=$local_image
  fi
fi
if [[ $KAFKA_IMAGE == "$local_image" ]]; then
  "$here/build-kafka-image.sh"
fi
export KAFKA_IMAGE
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
log "KAFKA_IMAGE=$KAFKA_IMAGE"
exec "$@"
