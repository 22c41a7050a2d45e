// Package dockerenv holds what the container test harnesses (kafkatest, pgtest) share:
// testcontainers defaults for offline machines, whether an engine answers, and whether an
// image is present.
package dockerenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

var setupOnce sync.Once

// Defaults applies environment defaults before testcontainers reads its configuration
// (it reads it once per process): Ryuk, testcontainers' reaper, is disabled unless
// TESTCONTAINERS_RYUK_DISABLED is set, since it is reached at a guessed address that can be
// wrong and its image may not be pullable offline (see decision 9); and testcontainers'
// own logging is silenced. The harnesses remove their containers themselves and label
// them for manual clean-up.
func Defaults(context.Context) {
	setupOnce.Do(func() {
		if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
			os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		tclog.SetDefault(tclog.NewNoopLogger())
	})
}

// ErrNoEngine is wrapped by Client's errors when no Docker engine answers.
var ErrNoEngine = errors.New("no Docker engine reachable")

// Client returns a testcontainers Docker client, or an error wrapping ErrNoEngine. An
// engine named by DOCKER_HOST must answer itself: testcontainers would fall back to the
// default socket, but a run that names an engine (DOCKER_HOST=unix:///nonexistent, as
// `make test-unit` does to run without Docker) means that one.
func Client(ctx context.Context) (*testcontainers.DockerClient, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		cli, err := client.New(client.FromEnv)
		if err == nil {
			_, err = cli.Ping(ctx, client.PingOptions{})
			cli.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: DOCKER_HOST=%s: %v", ErrNoEngine, host, err)
		}
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoEngine, err)
	}
	return cli, nil
}

// ImagePresent tells whether the engine has an image matching ref.
func ImagePresent(ctx context.Context, ref string) bool {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", ref)})
	if err != nil {
		return false
	}
	return len(res.Items) > 0
}
