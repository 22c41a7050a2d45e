package projection_test

import (
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/projection"
)

// New reports every mistake of its configuration at once, the reader's included, before
// anything runs.
func TestNewConfigErrors(t *testing.T) {
	_, err := projection.New(nil, projection.Config[kastor.Event]{
		Reader: consumer.Config[kastor.Event]{Name: "a b", Version: 2, Group: "mine"},
	})
	if err == nil {
		t.Fatal("New accepted an invalid configuration")
	}
	for _, want := range []string{
		"Config.Reader.Version is set", "Config.Reader.Group is set", "Config.Version is 0",
		"Config.NewSink is nil", "the cluster is nil", `Config.Name "a b"`, "no topic to read",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
