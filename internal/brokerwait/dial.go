package brokerwait

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RefusedRetryable returns the options that make a client derived from base (with
// cluster.Options) dial as base does, but report a refused connection as an error
// franz-go retries, a dial timeout, until the request's retry timeout. It is for
// components that have reached the cluster before, for which a refused dial is a broker
// down for now: franz-go would fail a coordinator lookup at once, and a group member
// whose heartbeat met a dead broker that way lost its membership (see decision 30).
func RefusedRetryable(base *kgo.Client) []kgo.Opt {
	dial, _ := base.OptValue(kgo.Dialer).(func(ctx context.Context, network, host string) (net.Conn, error))
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return []kgo.Opt{
		// base's effective dialer already applies its TLS configuration; franz-go refuses
		// a Dialer beside DialTLSConfig.
		kgo.DialTLSConfig(nil),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			conn, err := dial(ctx, network, host)
			if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
				return nil, &net.OpError{Op: "dial", Net: network, Err: refusedError{host: host}}
			}
			return conn, err
		}),
	}
}

// refusedError is a refused connection presented as a retryable dial timeout. It does not
// wrap the system call's error: franz-go looks for that first and would not retry.
type refusedError struct{ host string }

func (e refusedError) Error() string {
	return "connect to " + e.host + ": connection refused (retried)"
}
func (e refusedError) Timeout() bool   { return true }
func (e refusedError) Temporary() bool { return true }

// Is matches syscall.ECONNREFUSED, so that errors.Is still tells what happened.
func (e refusedError) Is(target error) bool { return target == syscall.ECONNREFUSED }
