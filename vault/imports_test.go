package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph: the vault imports neither alknet's core nor any networking package,
// directly or through a dependency.
func TestImportGraph(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var n int
	for {
		var pkg struct{ ImportPath string }
		if err := dec.Decode(&pkg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if forbiddenImport(pkg.ImportPath) {
			t.Errorf("vault depends on %s", pkg.ImportPath)
		}
	}
	if n < 10 {
		t.Fatalf("go list returned only %d packages", n)
	}
}

// forbiddenImport reports whether the vault may not depend on p.
func forbiddenImport(p string) bool {
	if p == "github.com/alkdev/alknet/vault" || strings.HasPrefix(p, "github.com/alkdev/alknet/vault/") {
		return false
	}
	for _, prefix := range []string{
		"github.com/alkdev/alknet", "net", "crypto/tls", "crypto/x509",
		"github.com/quic-go", "golang.org/x/net", "google.golang.org/grpc",
	} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

func TestForbiddenImport(t *testing.T) {
	for p, want := range map[string]bool{
		"net": true, "net/http": true, "net/netip": true, "crypto/tls": true,
		"github.com/quic-go/quic-go": true, "github.com/alkdev/alknet/core": true,
		"golang.org/x/net/http2": true, "github.com/alkdev/alknet/vault": false,
		"crypto/ed25519": false, "filippo.io/age": false, "netfoo": false, "os": false,
	} {
		if got := forbiddenImport(p); got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
}
