package kafkatest

import (
	"errors"
	"os"
	"regexp"
	"runtime"
	"testing"
)

func TestKafkaVersionMatchesImageBuild(t *testing.T) {
	pom, err := os.ReadFile("../docker/kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if m == nil {
		t.Fatal("no kafka.version in docker/kafka/pom.xml")
	}
	if string(m[1]) != KafkaVersion {
		t.Fatalf("docker/kafka/pom.xml builds Kafka %s but kafkatest.KafkaVersion is %s", m[1], KafkaVersion)
	}
}

// TestPropertyEnvInvertsEntrypointMapping checks the Go side of the KAFKA_* contract against
// the mapping rules of docker/kafka/run and the official image.
func TestPropertyEnvInvertsEntrypointMapping(t *testing.T) {
	for prop, env := range map[string]string{
		"transaction.max.timeout.ms":        "KAFKA_TRANSACTION_MAX_TIMEOUT_MS",
		"listener.name.client.ssl.keystore": "KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE",
		"confluent.some_prop":               "KAFKA_CONFLUENT_SOME__PROP",
		"log.cleaner-threads":               "KAFKA_LOG_CLEANER___THREADS",
		"group.initial.rebalance.delay.ms":  "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
	} {
		if got := propertyEnv(prop); got != env {
			t.Errorf("propertyEnv(%q) = %q, want %q", prop, got, env)
		}
	}
}

// fakeTB records how Use ends a test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Fatal(...any)          { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(func())        {}
func (f *fakeTB) Name() string          { return "fake" }
func (f *fakeTB) Logf(string, ...any)   {}
func (f *fakeTB) Errorf(string, ...any) { f.failed = true }

func runUse(err error) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Use(f, nil, err)
	}()
	<-done
	return f
}

func TestUseSkipsOrFailsWithoutDocker(t *testing.T) {
	noDocker := errors.Join(ErrNoDocker, errors.New("dial unix /var/run/docker.sock: no such file"))

	t.Setenv("CI", "")
	t.Setenv("KASTOR_REQUIRE_DOCKER", "")
	if f := runUse(noDocker); !f.skipped || f.failed {
		t.Fatalf("without Docker and without CI: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
	t.Setenv("CI", "true")
	if f := runUse(noDocker); f.skipped || !f.failed {
		t.Fatalf("without Docker under CI: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
	t.Setenv("CI", "")
	t.Setenv("KASTOR_REQUIRE_DOCKER", "1")
	if f := runUse(noDocker); f.skipped || !f.failed {
		t.Fatalf("without Docker with KASTOR_REQUIRE_DOCKER: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
	t.Setenv("KASTOR_REQUIRE_DOCKER", "")
	if f := runUse(errors.New("broker exploded")); f.skipped || !f.failed {
		t.Fatalf("other errors: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
}

func TestClusterIDsNeverStartWithADash(t *testing.T) {
	for range 2000 {
		id, err := newClusterID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || id[0] == '-' {
			t.Fatalf("cluster ID %q", id)
		}
	}
}
