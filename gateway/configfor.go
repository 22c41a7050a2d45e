package gateway

import "github.com/kastor-dev/kastor"

// ConfigFor is the Config of a gateway for agg with codecs (schema.ForAggregate derives
// them) and every other field at its default: gateway.New(c, gateway.ConfigFor(agg,
// codecs)) infers the type arguments that a Config literal must spell out.
func ConfigFor[S, C, E any](agg *kastor.Aggregate[S, C, E], codecs kastor.Codecs[S, C, E]) Config[S, C, E] {
	return Config[S, C, E]{Aggregate: agg, Commands: codecs.Commands, Events: codecs.Events, States: codecs.States}
}

// SenderConfigFor is the SenderConfig of a Sender of agg's commands, encoded with
// codecs.Commands, with a random CallerID.
func SenderConfigFor[S, C, E any](agg *kastor.Aggregate[S, C, E], codecs kastor.Codecs[S, C, E]) SenderConfig[C] {
	cfg := SenderConfig[C]{Commands: codecs.Commands}
	if agg != nil {
		cfg.AggregateType = agg.Type
	}
	return cfg
}
