package wire

import (
	"testing"

	"github.com/kastor-dev/kastor"
)

// BenchmarkHeaders is the envelope of one event, as the gateway writes it for every event.
func BenchmarkHeaders(b *testing.B) {
	md := kastor.Metadata{AggregateType: "bank.account", AggregateID: "acct-000042", Version: 17,
		Type: "bank.MoneyDeposited", Fingerprint: 0x9f3c61d2a47be015, CommandID: "0b9a6f43-8c52-4e0e-9a47-5f3c0c1e2d7a",
		CorrelationID: "0b9a6f43-8c52-4e0e-9a47-5f3c0c1e2d7a", CausationID: "0b9a6f43-8c52-4e0e-9a47-5f3c0c1e2d7a"}
	b.ReportAllocs()
	for b.Loop() {
		if len(Headers(&md)) != 8 {
			b.Fatal("headers")
		}
	}
}
