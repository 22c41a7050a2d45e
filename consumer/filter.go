package consumer

import (
	"slices"

	"github.com/kastor-dev/kastor"
)

// Match reports whether an event with metadata md passes the filter; the zero Filter
// passes every event. It reads only the metadata (the record headers), so a
// filtered-out event costs no decoding.
func (f *Filter) Match(md *kastor.Metadata) bool {
	if len(f.EventTypes) > 0 && !slices.Contains(f.EventTypes, md.Type) {
		return false
	}
	if len(f.AggregateIDs) > 0 && !slices.Contains(f.AggregateIDs, md.AggregateID) {
		return false
	}
	if len(f.Tags) > 0 && !slices.ContainsFunc(md.Tags, func(t string) bool { return slices.Contains(f.Tags, t) }) {
		return false
	}
	return true
}
