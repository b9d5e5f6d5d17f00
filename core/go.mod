module github.com/alkdev/alknet/core

go 1.26.8

require (
	github.com/quic-go/quic-go v0.64.1
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
)

require (
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
