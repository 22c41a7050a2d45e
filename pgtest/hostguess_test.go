package pgtest

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// TestContainerIgnoresTestcontainersHostGuess runs the harness where testcontainers' guess of
// the Docker host is a name that never resolves, as on a machine where it guesses the default
// gateway (issue #14): the server must still be reached, on 127.0.0.1.
func TestContainerIgnoresTestcontainersHostGuess(t *testing.T) {
	if os.Getenv("POSTGRES_DSN") != "" {
		t.Skip("POSTGRES_DSN is set: the harness starts no container")
	}
	if !dockerenv.WithBadHostGuess(t) {
		return
	}
	db := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Without the guess in force this test would prove nothing.
	ctr := db.container.container
	if host, err := ctr.Host(ctx); err != nil || host != dockerenv.UnresolvableHost {
		t.Fatalf("testcontainers guesses the host %q (%v), want %q", host, err, dockerenv.UnresolvableHost)
	}
	u, err := url.Parse(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("DSN host %q, want 127.0.0.1", u.Hostname())
	}
	info, err := ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.NetworkSettings.Ports) == 0 {
		t.Fatal("no port published")
	}
	for port, bindings := range info.NetworkSettings.Ports {
		for _, b := range bindings {
			if b.HostIP != loopback {
				t.Errorf("port %s published on %s:%s, want 127.0.0.1 only", port, b.HostIP, b.HostPort)
			}
		}
	}

	pool := Connect(t, db.NewDatabase(t))
	if _, err := pool.Exec(ctx, "CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO events VALUES (1, 'opened')"); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := pool.QueryRow(ctx, "SELECT body FROM events WHERE id = 1").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != "opened" {
		t.Fatalf("read back %q, want %q", body, "opened")
	}
}
