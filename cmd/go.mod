module github.com/alkdev/alknet/cmd

go 1.26.8

require (
	github.com/alkdev/alknet/call v0.0.0-00010101000000-000000000000
	github.com/alkdev/alknet/core v0.0.0
	github.com/alkdev/alknet/dns v0.0.0-00010101000000-000000000000
	github.com/alkdev/alknet/fs v0.0.0
	github.com/alkdev/alknet/sftp v0.0.0-00010101000000-000000000000
	github.com/alkdev/alknet/ssh v0.0.0-00010101000000-000000000000
	github.com/alkdev/alknet/vault v0.0.0-00010101000000-000000000000
	github.com/creack/pty v1.1.24
	github.com/miekg/dns v1.1.73
	github.com/pelletier/go-toml/v2 v2.4.3
	github.com/pkg/sftp v1.13.12
	github.com/schollz/progressbar/v3 v3.19.1
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require (
	filippo.io/age v1.3.2 // indirect
	filippo.io/hpke v0.4.0 // indirect
	github.com/bahlo/generic-list-go v0.2.0 // indirect
	github.com/buger/jsonparser v1.1.2 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/invopop/jsonschema v0.14.0 // indirect
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	github.com/kr/fs v0.1.0 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/pb33f/ordered-map/v2 v2.3.1 // indirect
	github.com/quic-go/quic-go v0.64.1 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	github.com/tyler-smith/go-bip39 v1.1.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.2 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	lukechampine.com/blake3 v1.4.1 // indirect
)

replace github.com/alkdev/alknet/core => ../core

replace (
	github.com/alkdev/alknet/call => ../call
	github.com/alkdev/alknet/dns => ../dns
	github.com/alkdev/alknet/fs => ../fs
	github.com/alkdev/alknet/sftp => ../sftp
	github.com/alkdev/alknet/ssh => ../ssh
	github.com/alkdev/alknet/vault => ../vault
)
