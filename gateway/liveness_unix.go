//go:build unix

package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// holdLiveLock takes the instance's lock file, waiting a moment for a process that is
// probing it. It fails when another live process on this host holds it: two live
// processes share the instance ID.
func holdLiveLock(group, instance string) (*liveLock, error) {
	path := lockPath(group, instance)
	if err := os.MkdirAll(lockDir(group), 0o777); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, err
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// A prober that found a dead holder removes the file while it holds the lock:
			// the lock is ours only if the path still names the file locked.
			if same(f, path) {
				return &liveLock{f: f, path: path}, nil
			}
			_ = f.Close()
			continue
		}
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("another live process on this host runs instance %q", instance)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// probeLive tells whether the process holding another instance's lock on this host is
// alive. For a dead one it returns the lock, held: done(true) removes the file (once the
// dead member is out of the group), done(false) leaves it; nil otherwise.
func probeLive(group, instance string) (l liveness, done func(remove bool)) {
	path := lockPath(group, instance)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return livenessUnknown, nil
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		_ = f.Close()
		return livenessAlive, nil
	}
	if err != nil || !same(f, path) {
		_ = f.Close()
		return livenessUnknown, nil
	}
	return livenessDead, func(remove bool) {
		if remove {
			_ = os.Remove(path)
		}
		_ = f.Close()
	}
}

// sweepLocks removes the unheld lock files of the group's instances that are no longer
// members (members names the lock files of those that are): left by crashed instances
// that the group has since dropped.
func sweepLocks(group string, members map[string]bool) {
	entries, err := os.ReadDir(lockDir(group))
	if err != nil {
		return
	}
	for _, e := range entries {
		if members[e.Name()] || e.IsDir() {
			continue
		}
		path := filepath.Join(lockDir(group), e.Name())
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && same(f, path) {
			_ = os.Remove(path)
		}
		_ = f.Close()
	}
}
