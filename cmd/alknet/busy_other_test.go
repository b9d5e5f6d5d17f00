//go:build !linux

package main

import "time"

// machineBusy is not measured outside Linux; benchmarks leave out their CPU metrics.
func machineBusy() (time.Duration, bool) { return 0, false }
