//go:build !linux

package chaos

import "syscall"

// childAttr: only Linux kills children with their parent (Pdeathsig); elsewhere the
// test's cleanup kills the gateways.
func childAttr() *syscall.SysProcAttr { return nil }
