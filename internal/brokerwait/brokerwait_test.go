package brokerwait

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// dialErr is franz-go's error for a broker that is not listening.
func dialErr(errno syscall.Errno) error {
	return fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
}

func TestTransient(t *testing.T) {
	refused := dialErr(syscall.ECONNREFUSED)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"dial refused", refused, true},
		{"dial refused, wrapped", fmt.Errorf("schema: listing offsets of _kastor.schemas: %w", refused), true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, true},
		{"host unreachable", dialErr(syscall.EHOSTUNREACH), true},
		{"i/o timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"EOF", fmt.Errorf("reading: %w", io.EOF), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"closed connection", net.ErrClosed, true},
		{"DNS timeout", &net.OpError{Op: "dial", Err: &net.DNSError{Name: "kafka-1", IsTimeout: true}}, true},
		{"record timeout", fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.NotLeaderForPartition), true},
		{"record retries", kgo.ErrRecordRetries, true},
		{"not leader", kerr.NotLeaderForPartition, true},
		{"leader not available", fmt.Errorf("metadata: %w", kerr.LeaderNotAvailable), true},
		{"not coordinator", kerr.NotCoordinator, true},
		{"coordinator not available", kerr.CoordinatorNotAvailable, true},
		{"coordinator loading", kerr.CoordinatorLoadInProgress, true},
		{"request timed out", kerr.RequestTimedOut, true},
		{"fenced leader epoch", kerr.FencedLeaderEpoch, true},
		{"not enough replicas", kerr.NotEnoughReplicas, true},
		{"marked", Retry(errors.New("partition 0 has no leader")), true},
		{"marked unknown topic", fmt.Errorf("listing offsets: %w", Retry(kerr.UnknownTopicOrPartition)), true},
		{"shards all transient", &kadm.ShardErrors{Errs: []kadm.ShardError{{Err: refused}, {Err: kerr.NotLeaderForPartition}}}, true},
		{"joined transient", errors.Join(refused, kerr.LeaderNotAvailable), true},

		{"canceled", context.Canceled, false},
		{"deadline", fmt.Errorf("listing offsets: %w", context.DeadlineExceeded), false},
		{"marked canceled", Retry(context.Canceled), false},
		{"gave up", fmt.Errorf("gave up waiting for x: %w; last error: %w", context.DeadlineExceeded, refused), false},
		{"client closed", fmt.Errorf("fetching: %w", kgo.ErrClientClosed), false},
		{"unknown topic", kerr.UnknownTopicOrPartition, false},
		{"unknown topic ID", kerr.UnknownTopicID, false},
		{"corrupt message", kerr.CorruptMessage, false},
		{"topic authorization", kerr.TopicAuthorizationFailed, false},
		{"kadm authorization", &kadm.AuthError{Err: kerr.ClusterAuthorizationFailed}, false},
		{"SASL", kerr.SaslAuthenticationFailed, false},
		{"invalid config", kerr.InvalidConfig, false},
		{"message too large", kerr.MessageTooLarge, false},
		{"unknown server error", kerr.UnknownServerError, false},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Name: "kafak-1", IsNotFound: true}}, false},
		{"permission denied", dialErr(syscall.EACCES), false},
		{"TLS or SASL missing", &kgo.ErrFirstReadEOF{}, false},
		{"malformed", errors.New("schema: malformed Avro data at byte 3"), false},
		{"shards with a missing topic", &kadm.ShardErrors{Errs: []kadm.ShardError{{Err: refused}, {Err: kerr.UnknownTopicOrPartition}}}, false},
		{"joined with a permanent error", errors.Join(refused, kerr.TopicAuthorizationFailed), false},
		{"empty join", &kadm.ShardErrors{}, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestTransientRealErrors classifies errors as franz-go and the operating system make
// them, so that a franz-go upgrade changing them shows here.
func TestTransientRealErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	_, err = net.Dial("tcp", addr)
	if err == nil || !Transient(err) {
		t.Errorf("dialing a closed port: %v, transient: %v", err, Transient(err))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err == nil || !Transient(err) {
		t.Errorf("metadata from a broker that is down: %v, transient: %v", err, Transient(err))
	}
	_, err = cl.Broker(7).Request(ctx, kmsg.NewPtrApiVersionsRequest())
	if err == nil || !Transient(err) {
		t.Errorf("request to a broker the client does not know: %v, transient: %v", err, Transient(err))
	}
	cl.Close()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err == nil || Transient(err) {
		t.Errorf("request on a closed client: %v, transient: %v", err, Transient(err))
	}
}

// fastWaits shortens the waits of Do for a test.
func fastWaits(t *testing.T, log time.Duration) {
	first, max, every := firstBackoff, maxBackoff, logEvery
	firstBackoff, maxBackoff, logEvery = time.Millisecond, 5*time.Millisecond, log
	t.Cleanup(func() { firstBackoff, maxBackoff, logEvery = first, max, every })
}

func captureLog() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func lines(buf *bytes.Buffer, substr string) int {
	n := 0
	for l := range strings.Lines(buf.String()) {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func TestDoRetriesTransientErrors(t *testing.T) {
	fastWaits(t, time.Hour)
	log, buf := captureLog()
	calls := 0
	err := Do(context.Background(), log, "the schemas topic", func(context.Context) error {
		calls++
		if calls < 4 {
			return fmt.Errorf("listing offsets: %w", dialErr(syscall.ECONNREFUSED))
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("Do = %v after %d calls, want nil after 4", err, calls)
	}
	if n := lines(buf, `level=WARN msg="waiting for the schemas topic; retrying" err="listing offsets: unable to dial`); n != 1 {
		t.Errorf("%d warnings, want 1 (the next ones come after logEvery):\n%s", n, buf)
	}
	if n := lines(buf, `level=INFO msg="done waiting for the schemas topic" attempts=4`); n != 1 {
		t.Errorf("%d lines saying the wait ended, want 1:\n%s", n, buf)
	}
}

func TestDoLogsEveryFewSeconds(t *testing.T) {
	fastWaits(t, 100*time.Millisecond)
	log, buf := captureLog()
	start := time.Now()
	err := Do(context.Background(), log, "x", func(context.Context) error {
		if time.Since(start) < 550*time.Millisecond {
			return kerr.LeaderNotAvailable
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// One line at the start, then one per 100 ms at most.
	if n := lines(buf, "waiting for x; retrying"); n < 2 || n > 7 {
		t.Errorf("%d warnings over 550 ms, want one every 100 ms:\n%s", n, buf)
	}
}

func TestDoFailsAtOnceOnPermanentErrors(t *testing.T) {
	fastWaits(t, time.Hour)
	log, buf := captureLog()
	for _, perm := range []error{kerr.UnknownTopicOrPartition, kerr.TopicAuthorizationFailed, errors.New("malformed"), kgo.ErrClientClosed} {
		calls := 0
		err := Do(context.Background(), log, "x", func(context.Context) error {
			calls++
			return fmt.Errorf("metadata: %w", perm)
		})
		if !errors.Is(err, perm) || calls != 1 {
			t.Errorf("Do = %v after %d calls, want %v after 1", err, calls, perm)
		}
	}
	// A permanent error after transient ones is returned as it is.
	calls := 0
	err := Do(context.Background(), log, "x", func(context.Context) error {
		calls++
		if calls == 1 {
			return kerr.NotLeaderForPartition
		}
		return kerr.TopicAuthorizationFailed
	})
	if err != kerr.TopicAuthorizationFailed || calls != 2 {
		t.Errorf("Do = %v after %d calls", err, calls)
	}
	if n := lines(buf, "WARN"); n != 1 {
		t.Errorf("%d warnings, want 1 (for the transient error):\n%s", n, buf)
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	fastWaits(t, time.Hour)
	log, _ := captureLog()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	refused := dialErr(syscall.ECONNREFUSED)
	err := Do(ctx, log, "the leader of _kastor.schemas/0", func(ctx context.Context) error { return refused })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) || Transient(err) {
		t.Fatalf("Do = %v, want the deadline and the last error, not transient", err)
	}
	if !strings.Contains(err.Error(), "gave up waiting for the leader of _kastor.schemas/0: context deadline exceeded; last error: unable to dial") {
		t.Errorf("message: %v", err)
	}

	// The attempt under way sees ctx end: the error is still the last transient one.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = Do(ctx, log, "x", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("listing offsets: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
			return kerr.LeaderNotAvailable
		}
	})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, kerr.LeaderNotAvailable) {
		t.Errorf("Do = %v, want the deadline and LEADER_NOT_AVAILABLE", err)
	}

	// Ended before any transient error: the attempt's error as it is.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = Do(ctx, log, "x", func(ctx context.Context) error { return fmt.Errorf("metadata: %w", ctx.Err()) })
	if err == nil || err.Error() != "metadata: context canceled" {
		t.Errorf("Do = %v", err)
	}

	// A permanent error wins over the end of ctx.
	ctx, cancel = context.WithCancel(context.Background())
	err = Do(ctx, log, "x", func(context.Context) error { cancel(); return kerr.TopicAuthorizationFailed })
	if err != kerr.TopicAuthorizationFailed {
		t.Errorf("Do = %v, want the authorization error", err)
	}
}

// TestDoRetriesAttemptDeadlines: an attempt bounded by a deadline of its own (a produce
// that waits for a leader, say) is tried again while ctx lives.
func TestDoRetriesAttemptDeadlines(t *testing.T) {
	fastWaits(t, time.Hour)
	log, buf := captureLog()
	calls := 0
	err := Do(context.Background(), log, "x", func(ctx context.Context) error {
		calls++
		if calls == 1 {
			actx, cancel := context.WithTimeout(ctx, time.Millisecond)
			defer cancel()
			<-actx.Done()
			return fmt.Errorf("producing: %w", actx.Err())
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("Do = %v after %d calls", err, calls)
	}
	if lines(buf, "waiting for x; retrying") != 1 {
		t.Errorf("the wait is not logged:\n%s", buf)
	}
}

// TestDoFirstReadEOF: an EOF on a connection's first request is tried a few times in a
// row (TLS or SASL misconfigured fails every time), or as long as it takes when the wait
// began with the cluster down (a broker starting behind a proxy).
func TestDoFirstReadEOF(t *testing.T) {
	fastWaits(t, time.Hour)
	log, _ := captureLog()
	calls := 0
	err := Do(context.Background(), log, "x", func(context.Context) error {
		calls++
		if calls <= maxFirstEOFs {
			return &kgo.ErrFirstReadEOF{}
		}
		return nil
	})
	if err != nil {
		t.Errorf("Do = %v after %d EOFs", err, maxFirstEOFs)
	}

	calls = 0
	err = Do(context.Background(), log, "x", func(context.Context) error {
		calls++
		return fmt.Errorf("metadata: %w", &kgo.ErrFirstReadEOF{})
	})
	var eof *kgo.ErrFirstReadEOF
	if !errors.As(err, &eof) || calls != maxFirstEOFs+1 {
		t.Errorf("Do = %v after %d calls, want the EOF after %d", err, calls, maxFirstEOFs+1)
	}

	// Refused, then EOFs while the broker starts, then up.
	calls = 0
	err = Do(context.Background(), log, "x", func(context.Context) error {
		calls++
		switch {
		case calls == 1:
			return dialErr(syscall.ECONNREFUSED)
		case calls <= 10:
			return &kgo.ErrFirstReadEOF{}
		}
		return nil
	})
	if err != nil || calls != 11 {
		t.Errorf("Do = %v after %d calls, want nil after 11", err, calls)
	}

	// A permanent error is not retried because EOFs came before it.
	calls = 0
	err = Do(context.Background(), log, "x", func(context.Context) error {
		calls++
		if calls == 1 {
			return &kgo.ErrFirstReadEOF{}
		}
		return kerr.SaslAuthenticationFailed
	})
	if err != kerr.SaslAuthenticationFailed || calls != 2 {
		t.Errorf("Do = %v after %d calls", err, calls)
	}
}

// TestAfterContact: a first-read EOF is transient for a client that reached the cluster
// before; other errors keep their verdict.
func TestAfterContact(t *testing.T) {
	eof := fmt.Errorf("reading events/3: %w", &kgo.ErrFirstReadEOF{})
	if Transient(eof) {
		t.Fatal("a first-read EOF is transient before any contact")
	}
	if err := AfterContact(eof); !Transient(err) || !errors.Is(err, eof) {
		t.Errorf("AfterContact(%v) = %v: not transient, or hides the EOF", eof, err)
	}
	if err := AfterContact(kerr.TopicAuthorizationFailed); Transient(err) {
		t.Errorf("AfterContact made %v transient", err)
	}
	if AfterContact(nil) != nil {
		t.Error("AfterContact(nil) != nil")
	}
}

func TestRetryBackoffGrowsToOneSecond(t *testing.T) {
	for tries, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 20 {
			if got := RetryBackoff(tries); got < want*8/10 || got > want*12/10 {
				t.Fatalf("RetryBackoff(%d) = %v, want %v ± 20%%", tries, got, want)
			}
		}
	}
}

// A refused dial through RefusedRetryable's dialer is a dial timeout to franz-go (a
// *net.OpError whose Timeout is true, with no system call error inside, which franz-go
// would treat as final) and still errors.Is ECONNREFUSED.
func TestRefusedRetryableDialer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	base, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	derived, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, RefusedRetryable(base)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer derived.Close()
	dial := derived.OptValue(kgo.Dialer).(func(context.Context, string, string) (net.Conn, error))
	_, err = dial(context.Background(), "tcp", addr)
	var op *net.OpError
	var sys *os.SyscallError
	if !errors.As(err, &op) || op.Op != "dial" || !op.Timeout() || errors.As(err, &sys) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial error %#v: want a dial *net.OpError that times out, hides the syscall error and matches ECONNREFUSED", err)
	}
}

// A base client dialing with TLS: the derived client keeps its dialer (which applies the
// TLS configuration) and is not refused for setting both Dialer and DialTLSConfig.
func TestRefusedRetryableKeepsTLS(t *testing.T) {
	base, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	derived, err := kgo.NewClient(append(base.Opts(), RefusedRetryable(base)...)...)
	if err != nil {
		t.Fatalf("a client derived from a TLS client: %v", err)
	}
	derived.Close()
}
