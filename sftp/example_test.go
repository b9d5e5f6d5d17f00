package sftp_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alksftp "github.com/alkdev/alknet/sftp"
	"github.com/pkg/sftp"
)

// A server serves a session on any stream; here an in-memory one, with pkg/sftp's
// client on the other end.
func ExampleServer_ServeStream() {
	dir, _ := os.MkdirTemp("", "sftp-example-")
	defer os.RemoveAll(dir)
	srv, err := alksftp.NewServer(alksftp.Config{Root: dir}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	client, server := coretest.StreamPipe()
	peer := core.Peer{Identity: &core.Identity{Name: "alice", Scopes: []string{core.ScopeSFTPWrite}}}
	done := make(chan error, 1)
	go func() {
		done <- srv.ServeStream(context.Background(), server, peer)
		server.Close()
	}()

	c, err := sftp.NewClientPipe(client, client)
	if err != nil {
		log.Fatal(err)
	}
	f, _ := c.Create("/hello.txt")
	f.ReadFrom(bytes.NewReader([]byte("hello\n")))
	f.Close()
	c.Close()
	fmt.Println(<-done)

	b, _ := os.ReadFile(dir + "/hello.txt")
	fmt.Printf("%s", b)
	// Output:
	// <nil>
	// hello
}

// Register the server on its ALPN, and it serves every stream of every connection
// on it.
func ExampleServer_ServeConn() {
	dir, _ := os.MkdirTemp("", "sftp-example-")
	defer os.RemoveAll(dir)
	srv, err := alksftp.NewServer(alksftp.Config{Root: dir, PerPeer: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	mux := core.NewMux()
	if err := mux.Handle(alksftp.ALPN, srv); err != nil {
		log.Fatal(err)
	}
	fmt.Println(mux.ALPNs())
	// Output: [alknet/sftp]
}

// A read-only peer may read, and every change is refused with "permission denied".
func ExampleErrReadOnly() {
	dir, _ := os.MkdirTemp("", "sftp-example-")
	defer os.RemoveAll(dir)
	os.WriteFile(dir+"/notes", []byte("keep me"), 0o644)
	srv, _ := alksftp.NewServer(alksftp.Config{Root: dir}, nil)
	defer srv.Close()

	client, server := coretest.StreamPipe()
	peer := core.Peer{Identity: &core.Identity{Name: "bob", Scopes: []string{core.ScopeSFTPRead}}}
	go func() {
		srv.ServeStream(context.Background(), server, peer)
		server.Close()
	}()
	c, _ := sftp.NewClientPipe(client, client)
	defer c.Close()

	_, err := c.Create("/notes")
	fmt.Println(err)
	f, _ := c.Open("/notes")
	var buf bytes.Buffer
	f.WriteTo(&buf)
	f.Close()
	fmt.Println(buf.String())
	// Output:
	// permission denied
	// keep me
}
