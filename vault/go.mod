module github.com/alkdev/alknet/vault

go 1.26.8
