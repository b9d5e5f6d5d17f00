package main

import "syscall"

var (
	sighup  = syscall.SIGHUP
	sigterm = syscall.SIGTERM
)
