//go:build !linux

package main

import "syscall"

// childProcAttr: only Linux kills a child with its parent (Pdeathsig); elsewhere the bench
// kills its children itself, except when it is killed.
func childProcAttr() *syscall.SysProcAttr { return nil }
