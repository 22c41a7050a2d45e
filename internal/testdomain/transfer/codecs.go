package transfer

import (
	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/schema"
)

// Codecs are the transfer's codecs, bound to one registry: the requests' (records
// bank.Request, bank.TransferRequested and bank.RequestState, derived from the Go types
// as the transfer example derives them) and the saga state's (bank.TransferProgress).
type Codecs struct {
	Registry *schema.Registry
	Requests kastor.Codecs[RequestState, Request, kastor.Event]
	Progress kastor.Codec[Progress]
}

// NewCodecs binds the Go types to their schemas in reg (a new registry when nil).
func NewCodecs(reg *schema.Registry) (*Codecs, error) {
	if reg == nil {
		reg = schema.NewRegistry()
	}
	requests, err := schema.ForAggregate(Aggregate, schema.InRegistry(reg),
		schema.Commands(schema.Of[Request]()), schema.Events(schema.Of[Requested]()))
	if err != nil {
		return nil, err
	}
	ps, err := schema.Derive[Progress](schema.Name("bank.TransferProgress"))
	if err != nil {
		return nil, err
	}
	progress, err := schema.NewCodec[Progress](reg, ps, schema.Describe("state"))
	if err != nil {
		return nil, err
	}
	return &Codecs{Registry: reg, Requests: requests, Progress: schema.ValueCodec(progress)}, nil
}
