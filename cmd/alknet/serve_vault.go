package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/alkdev/alknet/vault"
	"github.com/spf13/pflag"
)

// With [vault] enabled = true, the node key and the SSH host key derive from the vault:
// m/74'/0'/0'/0' and m/74'/0'/1'/0'. "serve" (and "id") unlock the vault file once,
// derive both keys, and lock it again; the passphrase comes from
// --vault-passphrase-file, --vault-passphrase-fd or the terminal.

func init() {
	nodeKeySource = vaultNodeKey
	hostKeySource = vaultHostKey
}

// vaultPass is where serve, id and init read the vault passphrase from.
var vaultPass passSource

// addVaultServeFlags adds --vault-passphrase-file and --vault-passphrase-fd to a
// command that may unlock the node's vault.
func addVaultServeFlags(fs *pflag.FlagSet) { vaultPass.register(fs, "vault-") }

// vaultNodeKeys are the keys derived for one app.
type vaultNodeKeys struct {
	node, host ed25519.PrivateKey
}

var (
	vaultKeysMu sync.Mutex
	vaultKeys   = map[*app]*vaultNodeKeys{}
)

func vaultNodeKey(a *app) (ed25519.PrivateKey, bool, error) {
	if !a.cfg.Vault.Enabled {
		return nil, false, nil
	}
	k, err := loadVaultKeys(a)
	if err != nil {
		return nil, true, err
	}
	return k.node, true, nil
}

func vaultHostKey(a *app) (ed25519.PrivateKey, bool, error) {
	if !a.cfg.Vault.Enabled {
		return nil, false, nil
	}
	k, err := loadVaultKeys(a)
	if err != nil {
		return nil, true, err
	}
	return k.host, true, nil
}

// loadVaultKeys unlocks the vault once per app and derives the node and host keys.
func loadVaultKeys(a *app) (*vaultNodeKeys, error) {
	vaultKeysMu.Lock()
	defer vaultKeysMu.Unlock()
	if k, ok := vaultKeys[a]; ok {
		return k, nil
	}
	path := a.cfg.dataPath(a.cfg.Vault.FileName())
	v, err := unlockVaultFile(path, &vaultPass)
	if err != nil {
		return nil, fmt.Errorf("vault (enabled in the config): %w", err)
	}
	defer v.Lock()
	node, err := v.DeriveEd25519(vault.IdentityPath)
	if err != nil {
		return nil, err
	}
	defer node.Wipe()
	host, err := v.DeriveEd25519(vault.SSHHostKeyPath)
	if err != nil {
		return nil, err
	}
	defer host.Wipe()
	k := &vaultNodeKeys{node: node.Signer(), host: host.Signer()}
	vaultKeys[a] = k
	a.onClose(func() error {
		vaultKeysMu.Lock()
		defer vaultKeysMu.Unlock()
		delete(vaultKeys, a)
		vault.Wipe(k.host)
		return nil
	})
	if a.log != nil {
		a.log.Info("vault unlocked; node and SSH host keys derived", "file", path)
	}
	return k, nil
}

// vaultInit is "alknet init --vault": the flags and what they do.
var vaultInit struct {
	enabled bool
	restore bool
	words   int
	work    int
}

// addVaultInitFlags adds --vault, --vault-restore, --vault-words and the passphrase
// flags to "alknet init".
func addVaultInitFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&vaultInit.enabled, "vault", false, "derive the node key and SSH host key from a new vault (vault.age, passphrase-protected); prints its mnemonic once")
	fs.BoolVar(&vaultInit.restore, "vault-restore", false, "with --vault: restore the vault from a mnemonic read from stdin instead of creating a new one")
	fs.IntVar(&vaultInit.words, "vault-words", 24, "with --vault: mnemonic length (12, 15, 18, 21 or 24 words)")
	fs.IntVar(&vaultInit.work, "vault-work-factor", vault.DefaultWorkFactor, "with --vault: scrypt work factor (10 to 22) of the vault file")
	addVaultServeFlags(fs)
}

// initVaultNodeKey creates (or restores) dir's vault when "init --vault" was given and
// returns the node key derived from it; ok is false without --vault.
func initVaultNodeKey(dir string) (key ed25519.PrivateKey, ok bool, err error) {
	if !vaultInit.enabled {
		if vaultInit.restore {
			return nil, false, errors.New("--vault-restore needs --vault")
		}
		return nil, false, nil
	}
	path := filepath.Join(dir, vault.DefaultFileName)
	var m *vault.Mnemonic
	if vaultInit.restore {
		phrase, err := readMnemonicInput(os.Stdin, os.Stderr)
		if err != nil {
			return nil, true, err
		}
		m, err = vault.ParseMnemonic(phrase)
		vault.Wipe(phrase)
		if err != nil {
			return nil, true, err
		}
	} else if m, err = vault.NewMnemonic(vaultInit.words); err != nil {
		return nil, true, err
	}
	defer m.Wipe()
	if err := createVaultFile(path, m, &vaultPass, false, vaultInit.work); err != nil {
		return nil, true, err
	}
	if !vaultInit.restore {
		fmt.Fprintf(os.Stderr, "Created the vault %s.\n%s\n\n  %s\n\n", path, mnemonicWarning, m.Bytes())
	}
	seed := m.Seed(nil)
	defer seed.Wipe()
	k, err := vault.DeriveEd25519(seed.Bytes(), vault.IdentityPath)
	if err != nil {
		return nil, true, err
	}
	defer k.Wipe()
	return k.Signer(), true, nil
}

// initVaultConfig turns the vault on in a config rendered by "init" when --vault was
// given.
func initVaultConfig(text string) string {
	if !vaultInit.enabled {
		return text
	}
	head, sec, ok := strings.Cut(text, "\n[vault]\n")
	if !ok {
		return text + "\n[vault]\nenabled = true\n"
	}
	return head + "\n[vault]\n" + strings.Replace(sec, "\nenabled = false\n", "\nenabled = true\n", 1)
}
