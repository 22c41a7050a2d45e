package schema

import (
	"strings"
	"testing"
	"time"
)

// The bank.AccountOpened event through three versions of its schema.

// v1: the first version.
const openedV1 = `{"type":"record","name":"AccountOpened","namespace":"bank","fields":[
	{"name":"accountID","type":"string"},
	{"name":"owner","type":"string"},
	{"name":"initial","type":"int"},
	{"name":"rate","type":"float"},
	{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD"]}},
	{"name":"note","type":["null","string"],"default":null},
	{"name":"legacyCode","type":"string","default":""}
]}`

// v2: owner renamed holder (by an upcaster: no alias), initial promoted int -> long, rate
// float -> double, a currency added, note widened to a long too, legacyCode removed, and
// openedAt, tags and address added with defaults.
const openedV2 = `{"type":"record","name":"AccountOpened","namespace":"bank","fields":[
	{"name":"accountID","type":"string"},
	{"name":"holder","type":"string"},
	{"name":"initial","type":"long"},
	{"name":"rate","type":"double"},
	{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD","GBP"]}},
	{"name":"note","type":["null","string","long"],"default":null},
	{"name":"openedAt","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
	{"name":"tags","type":{"type":"map","values":"string"},"default":{}},
	{"name":"address","type":["null",{"type":"record","name":"Address","fields":[
		{"name":"street","type":"string"},
		{"name":"city","type":"string"},
		{"name":"zip","type":["null","string"],"default":null}
	]}],"default":null}
]}`

// v3 breaks readers of v2 data: initial narrowed back to int, and branch added without a
// default.
const openedV3 = `{"type":"record","name":"AccountOpened","namespace":"bank","fields":[
	{"name":"accountID","type":"string"},
	{"name":"holder","type":"string"},
	{"name":"initial","type":"int"},
	{"name":"rate","type":"double"},
	{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD","GBP"]}},
	{"name":"note","type":["null","string","long"],"default":null},
	{"name":"openedAt","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
	{"name":"tags","type":{"type":"map","values":"string"},"default":{}},
	{"name":"branch","type":"string"}
]}`

type Currency string

// OpenedV1 is the Go type of version 1.
type OpenedV1 struct {
	AccountID  string
	Owner      string
	Initial    int32
	Rate       float32
	Currency   Currency
	Note       *string
	LegacyCode string
}

// AccountOpened is the Go type of version 2: the current one.
type AccountOpened struct {
	AccountID string
	Holder    string
	Initial   int64
	Rate      float64
	Currency  Currency
	Note      *string
	OpenedAt  time.Time
	Tags      map[string]string
	Address   *Address
}

func (AccountOpened) EventType() string { return "bank.AccountOpened" }

type Address struct {
	Street string
	City   string
	Zip    *string `avro:"zip"`
}

// renameOwner is the upcaster of v1 data: owner became holder.
func renameOwner(m map[string]any) (map[string]any, error) {
	if v, ok := m["owner"]; ok {
		m["holder"] = v
		delete(m, "owner")
	}
	return m, nil
}

func ptr[T any](v T) *T { return &v }

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
