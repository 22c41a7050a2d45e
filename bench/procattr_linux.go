package main

import "syscall"

// childProcAttr makes a child process (a gateway of the failover figure, a Kafka Streams
// JVM) die with the bench: a bench that exits on an error leaves no process behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
