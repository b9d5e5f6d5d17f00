package coretest

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer collects what many goroutines write at once, such as the log of a server
// under test (slog.NewTextHandler(buf, nil)). The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines returns the lines written so far that contain every one of words.
func (s *SyncBuffer) Lines(words ...string) []string {
	var out []string
	for l := range strings.Lines(s.String()) {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
