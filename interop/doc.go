// Package interop tests the recipes of docs/wire-format.md: programs in other languages
// that read what kastor writes to Kafka.
//
// Its test runs the bank example's gateway on a real Kafka cluster (package kafkatest),
// checks the records it wrote against the documented wire format, then runs
//
//   - java/: a Maven project reading the events with the Kafka Java client and Apache
//     Avro, and
//   - python/read_events.py: the same with confluent-kafka and fastavro,
//
// and compares what each prints with the events written. The Java program is built once
// per change of its sources, and the Python packages installed once per change of
// python/requirements.txt, under the user's cache directory (kastor/interop), or under
// KASTOR_INTEROP_CACHE when set. Without Java 17, Maven or Python 3 the test skips, or
// fails under CI or KASTOR_REQUIRE_DOCKER.
//
//	docker/with-kafka.sh go test -count=1 ./interop/...
package interop
