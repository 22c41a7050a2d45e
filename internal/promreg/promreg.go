// Package promreg registers kastor's Prometheus collectors so that the components of one
// kind in one process (two gateways of one aggregate type, two Senders, two readers of one
// projection) share them instead of counting into collectors nobody scrapes.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or the collector of the same description
// that reg already holds, which the caller must then update instead of c. A nil reg
// registers nothing and returns c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
