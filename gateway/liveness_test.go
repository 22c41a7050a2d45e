//go:build unix

package gateway

import (
	"os"
	"testing"
)

func TestLivenessByLockFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const group = "ns.acct.gateway"
	if l, done := probeLive(group, "nobody"); l != livenessUnknown || done != nil {
		t.Fatalf("no lock file: %v, want unknown", l)
	}
	lock, err := holdLiveLock(group, "a/b c")
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := probeLive(group, "a/b c"); l != livenessAlive {
		t.Fatalf("lock held: %v, want alive", l)
	}
	if _, err := holdLiveLock(group, "a/b c"); err == nil {
		t.Fatal("a second holder of a live instance's lock was let in")
	}
	lock.release(false) // as a crash leaves it: the file stays, unheld
	l, done := probeLive(group, "a/b c")
	if l != livenessDead {
		t.Fatalf("lock released, file kept: %v, want dead", l)
	}
	// While the prober holds a dead instance's lock, a restart under its name waits for it.
	got := make(chan error, 1)
	go func() {
		lock, err := holdLiveLock(group, "a/b c")
		if err == nil {
			defer lock.release(true)
			if l, _ := probeLive(group, "a/b c"); l != livenessAlive {
				t.Errorf("restarted instance: %v, want alive", l)
			}
		}
		got <- err
	}()
	done(true)
	if err := <-got; err != nil {
		t.Fatalf("restart under the dead instance's name: %v", err)
	}
	if l, _ := probeLive(group, "a/b c"); l != livenessUnknown {
		t.Fatalf("after a graceful stop: %v, want unknown (no file)", l)
	}

	// A crashed instance's file, no longer a member, is swept; a member's is kept.
	for _, in := range []string{"gone", "member"} {
		lock, err := holdLiveLock(group, in)
		if err != nil {
			t.Fatal(err)
		}
		lock.release(false)
	}
	sweepLocks(group, map[string]bool{lockName("member"): true})
	if _, err := os.Stat(lockPath(group, "gone")); !os.IsNotExist(err) {
		t.Errorf("a departed instance's lock file was not swept: %v", err)
	}
	if _, err := os.Stat(lockPath(group, "member")); err != nil {
		t.Errorf("a member's lock file was swept: %v", err)
	}
}
