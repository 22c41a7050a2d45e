package consumer

import "github.com/kastor-dev/kastor"

// ConfigFor is the Config of version 1 of the projection name over the events of
// aggregateTypes, decoded by events, with every other field at its default:
// consumer.New(c, consumer.ConfigFor(...), sink) infers the event type that a Config
// literal must spell out.
func ConfigFor[E any](name string, events kastor.Codec[E], aggregateTypes ...string) Config[E] {
	return Config[E]{Name: name, Version: 1, AggregateTypes: aggregateTypes, Events: events}
}

// LocalConfigFor is ConfigFor with AllPartitions set: the reader of a read model that
// every process holds whole (a Memory queried in each instance of a service), which joins
// no group and resumes from the offsets its sink stores.
func LocalConfigFor[E any](name string, events kastor.Codec[E], aggregateTypes ...string) Config[E] {
	cfg := ConfigFor(name, events, aggregateTypes...)
	cfg.AllPartitions = true
	return cfg
}
