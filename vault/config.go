package vault

// DefaultFileName is the vault file's name in a node's data folder.
const DefaultFileName = "vault.age"

// Config is the [vault] section of a node's config. The zero value is the default: the
// vault is off and the node keeps its keys in key files.
type Config struct {
	// Enabled makes the node derive its identity key (m/74'/0'/0'/0') and SSH host key
	// (m/74'/0'/1'/0') from the vault, unlocking it at start. Default false.
	Enabled bool `toml:"enabled"`
	// File is the vault file, relative to the data folder. Empty means "vault.age".
	File string `toml:"file"`
}

// FileName is File, or DefaultFileName when File is empty.
func (c Config) FileName() string {
	if c.File == "" {
		return DefaultFileName
	}
	return c.File
}
