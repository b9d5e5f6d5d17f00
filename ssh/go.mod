module github.com/alkdev/alknet/ssh

go 1.26.8

require (
	github.com/alkdev/alknet/core v0.0.0
	github.com/creack/pty v1.1.24
)

require go.uber.org/goleak v1.3.0

require (
	github.com/quic-go/quic-go v0.64.1 // indirect
	golang.org/x/crypto v0.59.0
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0
)

replace github.com/alkdev/alknet/core => ../core
