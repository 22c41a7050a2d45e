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
cache=${KASTOR_CACHE:-$HOME/.cache/kastor}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_recipe="debootstrap --variant=minbase --include=openjdk-17-jre-headless bookworm"
base_tag=$(printf '%s' "$base_recipe" | sha256sum | cut -c1-12)
base_image=kastor/debian-jre17:$base_tag

log() { printf '[kafka-image] %s\n' "$*" >&2; }

label_of() {
  docker image inspect --format '{{ index .Config.Labels "dev.kastor.inputs" }}' "$1" 2>/dev/null || true
}

inputs=$( (cd "$src" && cat Dockerfile pom.xml run server.properties log4j2.yaml; echo "$base_image") | sha256sum | cut -c1-16)
if [[ $force == 0 && "$(label_of "$image")" == "$inputs" ]]; then
  log "$image is up to date (inputs $inputs)"
  exit 0
fi

start=$(date +%s)

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  tarball=$cache/rootfs-$base_tag.tar
  if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || {
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get update -qq >/dev/null && apt-get install -y -qq debootstrap >/dev/null
      else
        log "debootstrap is missing: install it (apt-get install debootstrap) and run again"; exit 1
      fi
    }
    [[ $(id -u) == 0 ]] || { log "debootstrap needs root to build the base rootfs"; exit 1; }
    mkdir -p "$cache"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap: $base_recipe (about a minute)"
    debootstrap --variant=minbase --include=openjdk-17-jre-headless bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { log "debootstrap failed, see $cache/debootstrap.log"; tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  log "importing base image $base_image"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" >/dev/null
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$src"/Dockerfile "$src"/run "$src"/server.properties "$src"/log4j2.yaml "$ctx"/
log "fetching Apache Kafka $kafka_version jars from Maven Central"
mvn -q -B -Dstyle.color=never -f "$src/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$ctx/libs" >&2
log "building $image"
# The classic builder: it uses the imported base image as it is, where BuildKit on older
# engines may try to resolve FROM against a registry. Its deprecation notice is dropped.
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base_image" \
  --label "dev.kastor.inputs=$inputs" --label "org.apache.kafka.version=$kafka_version" \
  -t "$image" "$ctx" 2>&1 >/dev/null | { grep -vE 'DEPRECATED|BuildKit|environment-variable|^\s*$' || true; } >&2
log "built $image in $(( $(date +%s) - start ))s"
