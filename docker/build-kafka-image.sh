#!/usr/bin/env bash
# Builds the local Apache Kafka image without pulling any image:
#   1. a Debian bookworm rootfs with a Java 17 runtime (debootstrap), imported as a base image;
#   2. the broker's jars from Maven Central (docker/kafka/pom.xml);
#   3. docker build of docker/kafka/Dockerfile on top of the base.
# Both images carry a label with the hash of their inputs; an image whose inputs did not
# change is reused, so running this again costs a second. --force rebuilds the Kafka image.
#
# Environment: KASTOR_KAFKA_IMAGE (default kastor/kafka:<kafka.version>), KASTOR_CACHE
# (default ~/.cache/kastor) for the rootfs tarball, DEBIAN_MIRROR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/kafka
force=0
[[ ${1-} == --force ]] && force=1

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$src/pom.xml")
image=${KASTOR_KAFKA_IMAGE:-kastor/kafka:$kafka_version}

log() { printf '[kafka-image] %s\n' "$*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"
debian_base kastor/debian-jre17 openjdk-17-jre-headless

inputs=$( (cd "$src" && cat Dockerfile pom.xml run server.properties log4j2.yaml; echo "$base_image") | sha256sum | cut -c1-16)
if [[ $force == 0 && "$(label_of "$image")" == "$inputs" ]]; then
  log "$image is up to date (inputs $inputs)"
  exit 0
fi

start=$(date +%s)

ensure_debian_base

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$src"/Dockerfile "$src"/run "$src"/server.properties "$src"/log4j2.yaml "$ctx"/
log "fetching Apache Kafka $kafka_version jars from Maven Central"
mvn -q -B -Dstyle.color=never -f "$src/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$ctx/libs" >&2
log "building $image"
classic_build --build-arg "BASE_IMAGE=$base_image" \
  --label "dev.kastor.inputs=$inputs" --label "org.apache.kafka.version=$kafka_version" \
  -t "$image" "$ctx"
log "built $image in $(( $(date +%s) - start ))s"
