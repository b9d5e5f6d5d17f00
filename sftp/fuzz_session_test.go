package sftp

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// pathPacket builds a request carrying an id and strings (paths), then raw extra.
func pathPacket(typ byte, id uint32, strs []string, extra []byte) []byte {
	body := binary.BigEndian.AppendUint32(nil, id)
	for _, s := range strs {
		body = appendString(body, s)
	}
	return framePacket(typ, append(body, extra...))
}

// FuzzSession feeds a session arbitrary requests after a valid INIT, from a writing
// peer, with a symbolic link to a folder outside the root in place. The session must
// end cleanly at end of input, and nothing outside the root may change.
func FuzzSession(f *testing.F) {
	flags := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.BigEndian.AppendUint32(b, x)
		}
		return b
	}
	f.Add(pathPacket(3, 1, []string{"/escape/x"}, flags(0x1a, 0)))         // open create|trunc|write
	f.Add(pathPacket(3, 1, []string{"../../x"}, flags(0x0a, 0)))           // open create|write
	f.Add(pathPacket(14, 2, []string{"/escape/d"}, flags(0)))              // mkdir
	f.Add(pathPacket(20, 3, []string{"/etc", "/l"}, nil))                  // symlink
	f.Add(pathPacket(18, 4, []string{"/escape/sentinel", "/s"}, nil))      // rename
	f.Add(pathPacket(13, 5, []string{"/escape/sentinel"}, nil))            // remove
	f.Add(pathPacket(9, 6, []string{"/escape/sentinel"}, flags(4, 0o777))) // setstat perms
	f.Add(pathPacket(fxpExtended, 7, []string{extHardlink, "/escape/sentinel", "/h"}, nil))
	f.Add(pathPacket(fxpExtended, 8, []string{extPosixRename, "/x", "/escape/y"}, nil))
	f.Add(pathPacket(fxpExtended, 9, []string{extStatVFS, "/escape"}, nil))
	f.Add(append(pathPacket(3, 1, []string{"/f"}, flags(0x1a, 0)),
		pathPacket(6, 2, []string{"1"}, append(flags(0, 0), appendString(nil, "data")...))...)) // open, write
	f.Fuzz(func(t *testing.T, in []byte) {
		base := t.TempDir()
		root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "sentinel"), []byte("keep"), 0o644)
		s, err := NewServer(Config{Root: root}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		os.Symlink(outside, filepath.Join(root, "escape"))
		a, b := coretest.StreamPipe()
		defer a.Close()
		done := make(chan error, 1)
		go func() {
			done <- s.ServeStream(context.Background(), b, writer)
			b.Close()
		}()
		go io.Copy(io.Discard, a)
		a.Write(framePacket(fxpInit, binary.BigEndian.AppendUint32(nil, 3)))
		a.Write(in)
		a.CloseWrite()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("session did not end at end of input")
		}
		ents, _ := os.ReadDir(outside)
		st, err := os.Stat(filepath.Join(outside, "sentinel"))
		if data, _ := os.ReadFile(filepath.Join(outside, "sentinel")); len(ents) != 1 || err != nil || string(data) != "keep" || st.Mode().Perm() != 0o644 {
			t.Fatalf("the folder outside the root changed: %v %v %q", ents, err, data)
		}
		if ents, _ := os.ReadDir(base); len(ents) != 2 {
			t.Fatalf("entries appeared beside the root: %v", ents)
		}
	})
}
