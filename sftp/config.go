package sftp

// Config is the [sftp] section of a node's configuration. The zero value is the
// default: one folder named "sftp" shared by every peer.
type Config struct {
	// Root is the folder served. A relative path is resolved by the caller (the alknet
	// command resolves it against the node's data folder). Default "sftp". It is
	// created, mode 0700, if missing.
	Root string `toml:"root"`
	// PerPeer gives each peer its own folder, Root/<peer name>, created on first use,
	// instead of one folder shared by all. Default false.
	PerPeer bool `toml:"per_peer"`
}

// DefaultRoot is the folder served when [Config.Root] is empty.
const DefaultRoot = "sftp"

func (c Config) withDefaults() Config {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	return c
}
