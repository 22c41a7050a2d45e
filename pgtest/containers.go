package pgtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// The label marks every container the harness starts, the same as package kafkatest's, so
// leftovers of a killed test run are removed by `make clean-containers`.
const harnessLabel = "dev.kastor.kafkatest"

const superuser = "postgres"

var serverPort = network.MustParsePort("5432/tcp")

// loopback is where the server's port is published and where clients connect. Never the
// address testcontainers guesses for the Docker host (Host, PortEndpoint, the port wait
// strategies): on a machine that looks like a container (/.dockerenv) that is the default
// gateway, not this machine.
var loopback = netip.MustParseAddr("127.0.0.1")

type pgContainer struct {
	image     string
	dsn       string
	container *testcontainers.DockerContainer
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
	if !dockerenv.ImagePresent(ctx, OfficialImage) && dockerenv.ImagePresent(ctx, LocalImage) {
		return LocalImage
	}
	return OfficialImage
}

func startContainer(ctx context.Context, cfg config) (*pgContainer, error) {
	dockerenv.Defaults(ctx)
	if cli, err := dockerenv.Client(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	} else {
		cli.Close()
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
		// Only exposed ports keep their bindings in testcontainers. Docker picks the port on
		// 127.0.0.1: unlike a Kafka broker, PostgreSQL need not know it in advance.
		testcontainers.WithExposedPorts(serverPort.String()),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{serverPort: {{HostIP: loopback}}}
		}),
		// No wait strategy: readiness is a login over the DSN (see connect), and
		// testcontainers' port strategies would dial its guess of the host.
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
	addr, err := loopbackAddr(ctx, ctr)
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

// loopbackAddr returns 127.0.0.1 and the port Docker published the server's port on there,
// read from the container's bindings rather than from testcontainers' MappedPort, which
// takes the first binding whatever its address.
func loopbackAddr(ctx context.Context, ctr *testcontainers.DockerContainer) (string, error) {
	info, err := ctr.Inspect(ctx)
	if err != nil {
		return "", err
	}
	bindings := info.NetworkSettings.Ports[serverPort]
	for _, b := range bindings {
		if b.HostIP == loopback && b.HostPort != "" && b.HostPort != "0" {
			return net.JoinHostPort(loopback.String(), b.HostPort), nil
		}
	}
	return "", fmt.Errorf("port %s is not published on %s (bindings: %v)", serverPort, loopback, bindings)
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
