// Command kastor (built from cmd/tool) runs a development broker and administers kastor
// applications on Kafka: their topics, schemas, aggregates, commands, projections and dead
// letters. Run `kastor --help` for an overview and docs/cli.md for the reference.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kastor-dev/kastor/topics"
)

// Exit codes. Drift has its own code so a deploy script can tell "the cluster does not
// match the topic file" (a human decision) from "the command failed" (retry or fix).
const (
	exitOK    = 0 // success: in sync, created, or dry run without drift
	exitError = 1 // failure: bad topic file, unreachable brokers, failed creation, ...
	exitUsage = 2 // bad command line: unknown command or flag, bad flag value
	exitDrift = 3 // existing topics differ from the topic file; nothing was changed on them
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit code. Errors are printed
// to stderr prefixed with "kastor: ".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	// Several problems (say, in a topic file) come as lines; prefix each one.
	for _, line := range strings.Split(err.Error(), "\n") {
		// The library's own errors start with "kastor: " already.
		fmt.Fprintf(stderr, "kastor: %s\n", strings.TrimPrefix(line, "kastor: "))
	}
	code := exitCode(err)
	if code == exitUsage {
		var ue *usageError
		if errors.As(err, &ue) && ue.cmd != nil {
			cmd = ue.cmd
		}
		if cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case onlyDrift(err):
		return exitDrift
	default:
		return exitError
	}
}

// onlyDrift tells whether err is drift and nothing worse: a run where a creation failed
// and another topic drifted is a failure.
func onlyDrift(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyDrift(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	return errors.Is(err, topics.ErrDrift)
}
