//go:build !unix

package gateway

// holdLiveLock: no file locks here; other processes cannot tell this instance alive.
func holdLiveLock(group, instance string) (*liveLock, error) { return nil, nil }

// probeLive: no file locks here; every other instance's liveness is unknown.
func probeLive(group, instance string) (liveness, func(bool)) { return livenessUnknown, nil }

// sweepLocks: no lock files here.
func sweepLocks(group string, members map[string]bool) {}
