module github.com/alkdev/alknet/sftp

go 1.26.8

require github.com/alkdev/alknet/core v0.0.0

replace github.com/alkdev/alknet/core => ../core
