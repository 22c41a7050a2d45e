#!/usr/bin/env bash
# Runs a command (usually `go test`) with a Kafka and a PostgreSQL test bed ready:
#   - KAFKA_BROKERS set: no Kafka is started; tests use that cluster. Likewise POSTGRES_DSN
#     for PostgreSQL (pgtest creates a database per test in that server).
#   - otherwise the Docker engine is made ready (docker/ensure-docker.sh) and the images are
#     chosen:
#       KAFKA_IMAGE: the value given, else the official apache/kafka image when it is present
#       or can be pulled, else the image built offline by docker/build-kafka-image.sh;
#       POSTGRES_IMAGE: the value given, else the official postgres:16 image when it is
#       present or can be pulled, else the image built offline by
#       docker/build-postgres-image.sh (kastor/postgres:15).
#     An offline image is built, or reused in about a second when its inputs did not change.
#     TESTCONTAINERS_RYUK_DISABLED defaults to true (Ryuk cannot be pulled offline; kafkatest
#     and pgtest remove their own containers).
# Usage: docker/with-kafka.sh go test ./...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[kafka] %s\n' "$*" >&2; }
pglog() { printf '[postgres] %s\n' "$*" >&2; }

if [[ -n ${KAFKA_BROKERS-} ]]; then
  log "using the cluster at KAFKA_BROKERS=$KAFKA_BROKERS"
fi
if [[ -n ${POSTGRES_DSN-} ]]; then
  pglog "using the server at POSTGRES_DSN" # not printed: it may hold a password
fi
if [[ -n ${KAFKA_BROKERS-} && -n ${POSTGRES_DSN-} ]]; then
  exec "$@"
fi

if ! "$here/ensure-docker.sh"; then
  log "no Docker engine: integration tests will skip (or fail under CI / KASTOR_REQUIRE_DOCKER)"
  exec "$@"
fi

# present_or_pulled IMAGE: whether IMAGE is in the engine, pulling it when it can be pulled.
present_or_pulled() {
  docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1" >/dev/null 2>&1
}

if [[ -z ${KAFKA_BROKERS-} ]]; then
  version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
  official=apache/kafka:$version
  local_image=${KASTOR_KAFKA_IMAGE:-kastor/kafka:$version}
  if [[ -z ${KAFKA_IMAGE-} ]]; then
    if present_or_pulled "$official"; then
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
  log "KAFKA_IMAGE=$KAFKA_IMAGE"
fi

if [[ -z ${POSTGRES_DSN-} ]]; then
  pg_official=postgres:16
  pg_local=${KASTOR_POSTGRES_IMAGE:-kastor/postgres:15}
  if [[ -z ${POSTGRES_IMAGE-} ]]; then
    if present_or_pulled "$pg_official"; then
      POSTGRES_IMAGE=$pg_official
    else
      pglog "$pg_official cannot be pulled here: using the offline build $pg_local"
      POSTGRES_IMAGE=$pg_local
    fi
  fi
  if [[ $POSTGRES_IMAGE == "$pg_local" ]]; then
    "$here/build-postgres-image.sh"
  fi
  export POSTGRES_IMAGE
  pglog "POSTGRES_IMAGE=$POSTGRES_IMAGE"
fi

export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
exec "$@"
