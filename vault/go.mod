module github.com/alkdev/alknet/vault

go 1.26.8

require (
	filippo.io/age v1.3.2
	github.com/tyler-smith/go-bip39 v1.1.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
	golang.org/x/text v0.44.0
)

require (
	filippo.io/hpke v0.4.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
