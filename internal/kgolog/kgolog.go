// Package kgolog sends franz-go's client logs to log/slog.
package kgolog

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// New returns a kgo.Logger writing franz-go's warnings and errors to l. franz-go logs
// every transaction, rebalance and connection at Info: at the rates kastor runs them that
// would drown the application's own logs, so only warnings and errors pass; kastor's
// clients set it after the shared client's options, so it replaces a kgo.WithLogger there.
func New(l *slog.Logger) kgo.Logger { return logger{l} }

type logger struct{ l *slog.Logger }

func (logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		a.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		a.l.Warn(msg, keyvals...)
	}
}
