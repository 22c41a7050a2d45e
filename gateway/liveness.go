package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// liveness is what this process can tell about another instance from its lock file.
type liveness int

const (
	// livenessUnknown: no lock file of that instance here (another host, another
	// TMPDIR, a platform without file locks, or an older version).
	livenessUnknown liveness = iota
	// livenessAlive: a process holds the instance's lock.
	livenessAlive
	// livenessDead: the lock file is there and nobody holds it: the process that held it
	// ended (the kernel releases a lock when its holder dies, kill -9 included).
	livenessDead
)

// lockDir holds the lock files of a group's instances on this host.
func lockDir(group string) string {
	return filepath.Join(os.TempDir(), "kastor-gateway", strings.NewReplacer("/", "_", string(os.PathSeparator), "_").Replace(group))
}

// lockPath is the lock file of one instance: named by a hash, as an instance ID may hold
// any character.
func lockPath(group, instance string) string {
	return filepath.Join(lockDir(group), lockName(instance))
}

func lockName(instance string) string {
	sum := sha256.Sum256([]byte(instance))
	return hex.EncodeToString(sum[:12]) + ".lock"
}

// liveLock is this instance's lock file, held while Run runs, so that a process starting on
// this host can tell this instance alive and a crashed one dead (see decision 41).
type liveLock struct {
	f    *os.File
	path string
}

// release unlocks the lock file, and removes it when the instance left its group: kept,
// it tells a successor that this instance's membership is a dead one's.
func (l *liveLock) release(left bool) {
	if l == nil {
		return
	}
	if left {
		_ = os.Remove(l.path)
	}
	_ = l.f.Close()
}
