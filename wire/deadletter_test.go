package wire

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDeadLetterHeadersRoundTrip(t *testing.T) {
	orig := []kgo.RecordHeader{{Key: "kastor.type", Value: []byte("bank.Deposited")}}
	d := DeadLetter{Reason: "held", Attempts: 0, Topic: "demo.bank.account.events", Partition: 3, Offset: 42,
		Timestamp: time.UnixMilli(1700000000123), Projection: "balances", Version: 2, HeldBehind: 40}
	hs := d.AppendHeaders(append([]kgo.RecordHeader(nil), orig...))
	got, others, err := ParseDeadLetter(hs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) || !reflect.DeepEqual(others, orig) {
		t.Fatalf("parsed %+v with %v, want %+v with %v", got, others, d, orig)
	}
	if _, _, err := ParseDeadLetter(orig); err == nil || !strings.Contains(err.Error(), HeaderDLQReason) {
		t.Fatalf("a record without dead-letter headers: err %v", err)
	}
	bad := append(d.AppendHeaders(nil), kgo.RecordHeader{Key: HeaderDLQOffset, Value: []byte("x")})
	if _, _, err := ParseDeadLetter(bad); err == nil || !strings.Contains(err.Error(), HeaderDLQOffset) {
		t.Fatalf("a malformed offset: err %v", err)
	}
}
