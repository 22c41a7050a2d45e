// Package kafkatest gives tests a Kafka cluster to talk to: real Apache Kafka in containers
// (started with testcontainers-go), an existing cluster, or the embedded broker.
//
// Start picks the backend from the environment:
//
//   - KAFKA_BROKERS=host:port[,host:port] uses that cluster and starts nothing;
//   - otherwise it starts Apache Kafka in KRaft mode in Docker: one combined
//     broker+controller node, or three with Nodes(3). The image is KAFKA_IMAGE, by default
//     the official apache/kafka image of KafkaVersion, or the image built offline by
//     docker/build-kafka-image.sh (kastor/kafka:KafkaVersion) when only that one is present.
//
// When no Docker engine can be reached, Start skips the test with a message that says how to
// run it, unless CI or KASTOR_REQUIRE_DOCKER is set: then the test fails, so a CI run can
// never pass by skipping its integration tests.
//
// StartEmbedded returns the same Cluster type backed by franz-go's kfake, in process. Use it
// for unit tests; a Kafka guarantee is only proven against Start's real brokers.
//
// Tests that share one cluster should use a distinct topic per test: TopicName gives one.
// To share a cluster across a package, use NewShared, and Main in TestMain to close it.
package kafkatest
