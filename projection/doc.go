// Package projection manages kastor's projections over the readers of package consumer:
// it runs a projection by name across its versions, rebuilds it without downtime, and
// administers its dead letters (replay, purge), all through the projection registry that
// every instance of an application and the kastor CLI share.
//
// Package consumer is the reader core (consumer.Reader, the sinks, dead letters as data);
// this package builds on it and consumer never imports it, so an application that only
// reads events needs nothing from here (see decision 19 for the registry, 25 for replay
// leases).
//
// # Running a projection
//
// A Projection (New, Config) runs in every instance of an application: the serving
// version's consumer.Reader, and during a rebuild version v+1's Reader beside it, under
// its own consumer group, from the earliest offsets, into a fresh sink from
// Config.NewSink, while v keeps serving. Once v+1 has applied up to the end offsets
// captured when the rebuild started, every instance switches to it (Config.OnSwitch)
// and v's group is deleted:
//
//	p, err := projection.New(c, projection.Config[kastor.Event]{
//		Reader: consumer.Config[kastor.Event]{
//			Name: "balances", AggregateTypes: []string{"bank.account"}, Events: codecs.Events,
//		},
//		Version: 1,
//		NewSink: func(version int) (consumer.Sink[kastor.Event], error) { return newBalances(), nil },
//	})
//	...
//	go p.Run(ctx)
//	_, sink := p.Serving() // queries go to the serving version's sink
//
// # The registry
//
// RegistryTopic (_kastor.projections: one partition, compacted, shared by every
// namespace) holds each projection's State (the version serving, the one being built,
// the offsets a rebuild must reach), its RebuildProgress, and the Requests tools make of
// the running instances (rebuild, cancel, replay) with their outcomes. Its single
// partition gives every record one total order, so it is a compare-and-set log: a
// transition is accepted only with the next epoch, and of concurrent proposals the first
// wins in every instance. Every instance acts only on what it reads back, never on what it
// wrote. Tools read it with ReadRegistry and WatchRegistry and write requests with
// SubmitRequest; CreateRegistry (or `kastor projection init`) creates the topic, which
// kastor never does implicitly.
//
// # Dead letters
//
// Replay re-applies a projection version's unresolved dead letters through a sink, in
// order per aggregate, and marks each applied one resolved (consumer.ResolutionMarker);
// Purge marks them resolved without applying them. A replay request (`kastor dlq
// replay`) is executed by one running instance, the first to claim it, through its
// serving sink; the claim is a lease (Config.ReplayLease) that another instance takes
// over when the holder dies or stalls. After a replay or purge every instance reloads its
// readers' dead letters (consumer.Reader.ReloadDeadLetters), so aggregates parked under
// consumer.ParkAggregate flow again.
package projection
