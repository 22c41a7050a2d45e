//go:build linux

package chaos

import "syscall"

// childAttr makes the kernel kill a gateway when the test binary dies (a test timeout's
// panic, a SIGKILL), so no gateway outlives the run even when no cleanup runs.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
