package pgtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// The label marks every container the harness starts, the same as package kafkatest's, so
// leftovers of a killed test run are removed by `make clean-containers`.
const harnessLabel = "dev.kastor.kafkatest"

const (
	serverPort = "5432/tcp"
	superuser  = "postgres"
)

type pgContainer struct {
	image     string
	dsn       string
	container *testcontainers.DockerContainer
}

var setupOnce sync.Once

// dockerDefaults applies environment defaults before testcontainers reads its configuration
// (it reads it once per process), as package kafkatest does.
func dockerDefaults(ctx context.Context) {
	setupOnce.Do(func() {
		// Ryuk, testcontainers' reaper, is an image pulled from Docker Hub. Where it is not
		// available locally, a pull may be impossible (offline machines): run without it; the
		// harness removes its containers itself and labels them for manual clean-up.
		if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" && !imagePresent(ctx, "testcontainers/ryuk") {
			os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		tclog.SetDefault(tclog.NewNoopLogger())
	})
}

func imagePresent(ctx context.Context, ref string) bool {
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

// checkDocker tells whether a Docker engine answers, as testcontainers finds it. An engine
// named by DOCKER_HOST must answer itself: testcontainers would fall back to the default
// socket, but a run that names an engine (such as DOCKER_HOST=unix:///nonexistent to run
// without Docker) means that one.
func checkDocker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		cli, err := client.New(client.FromEnv)
		if err == nil {
			_, err = cli.Ping(ctx, client.PingOptions{})
			cli.Close()
		}
		if err != nil {
			return fmt.Errorf("%w: DOCKER_HOST=%s: %v", ErrNoDocker, host, err)
		}
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	cli.Close()
	return nil
}

// chooseImage applies the documented order: Image option, POSTGRES_IMAGE, the official image
// when present or pullable, the offline-built local image when only that one is present.
func chooseImage(ctx context.Context, cfg config) string {
	if cfg.image != "" {
		return cfg.image
	}
	if env := os.Getenv("POSTGRES_IMAGE"); env != "" {
		return env
	}
	if !imagePresent(ctx, OfficialImage) && imagePresent(ctx, LocalImage) {
		return LocalImage
	}
	return OfficialImage
}

func startContainer(ctx context.Context, cfg config) (*pgContainer, error) {
	dockerDefaults(ctx)
	if err := checkDocker(ctx); err != nil {
		return nil, err
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	password := hex.EncodeToString(b[:])
	pc := &pgContainer{image: chooseImage(ctx, cfg)}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER":     superuser,
			"POSTGRES_PASSWORD": password,
			"POSTGRES_DB":       "postgres",
		}),
		testcontainers.WithLabels(map[string]string{harnessLabel: "1"}),
		testcontainers.WithExposedPorts(serverPort),
	}
	if len(cfg.settings) > 0 {
		opts = append(opts, testcontainers.WithCmd(append([]string{"postgres"}, cfg.settings...)...))
	}
	ctr, err := testcontainers.Run(ctx, pc.image, opts...)
	if err != nil {
		if ctr != nil {
			_ = ctr.Terminate(context.Background())
		}
		if strings.Contains(err.Error(), "pull") || strings.Contains(err.Error(), "No such image") {
			return nil, fmt.Errorf("pgtest: start PostgreSQL with image %s: %w\n(offline? build the image with docker/build-postgres-image.sh and set POSTGRES_IMAGE=%s)", pc.image, err, LocalImage)
		}
		return nil, fmt.Errorf("pgtest: start PostgreSQL with image %s: %w", pc.image, err)
	}
	pc.container = ctr
	addr, err := hostPort(ctx, ctr)
	if err != nil {
		pc.terminate(context.Background())
		return nil, fmt.Errorf("pgtest: address of the PostgreSQL container: %w", err)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     addr,
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	pc.dsn = u.String()
	return pc, nil
}

// hostPort returns the address where the container's server port is published.
func hostPort(ctx context.Context, ctr *testcontainers.DockerContainer) (string, error) {
	host, err := ctr.Host(ctx)
	if err != nil {
		return "", err
	}
	port, err := ctr.MappedPort(ctx, serverPort)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port.Port()), nil
}

// exited returns an error when the container is no longer running, so that waiting for a
// server that crashed at start-up (a bad setting, say) ends at once.
func (pc *pgContainer) exited(ctx context.Context) error {
	st, err := pc.container.State(ctx)
	if err != nil || st.Running {
		return nil
	}
	return fmt.Errorf("PostgreSQL container (%s) exited with code %d", pc.image, st.ExitCode)
}

func (pc *pgContainer) logTail(ctx context.Context, lines int) []string {
	rc, err := pc.container.Logs(ctx)
	if err != nil {
		return []string{fmt.Sprintf("postgres: no logs: %v", err)}
	}
	defer rc.Close()
	var all []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return append([]string{fmt.Sprintf("---- last %d log lines of postgres (%s) ----", len(all), pc.image)}, all...)
}

func (pc *pgContainer) terminate(ctx context.Context) error {
	return pc.container.Terminate(ctx)
}
