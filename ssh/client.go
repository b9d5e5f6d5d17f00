package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// errGotHostKey stops a handshake once the host key is known.
var errGotHostKey = errors.New("ssh: host key received")

// FetchHostKey runs the start of an SSH handshake over nc, as far as the server's host
// key, and returns that key. It closes nc. Over an alknet connection whose node ID was
// pinned in TLS the key is as trustworthy as the node ID, which is how
// "alknet ssh-config" prints a known_hosts line without trust on first use.
func FetchHostKey(ctx context.Context, nc net.Conn) (gossh.PublicKey, error) {
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Now().Add(15 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	var key gossh.PublicKey
	cfg := &gossh.ClientConfig{
		User: "alknet",
		HostKeyCallback: func(_ string, _ net.Addr, k gossh.PublicKey) error {
			key = k
			return errGotHostKey
		},
		HostKeyAlgorithms: []string{gossh.KeyAlgoED25519},
	}
	_, _, _, err := gossh.NewClientConn(nc, "alknet", cfg)
	if key != nil {
		return key, nil
	}
	if err == nil {
		err = errors.New("no host key")
	}
	return nil, fmt.Errorf("ssh: fetch host key: %w", err)
}
