//go:build linux

package main

import (
	"runtime"
	"syscall"
	"testing"
)

func TestCurrentUmask(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	if got := currentUmask(); got != 0o027 {
		t.Errorf("currentUmask() = %o, want 027", got)
	}
}
