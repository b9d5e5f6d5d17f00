package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/vault"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// vaultCLI holds the flags every "alknet vault" command shares.
type vaultCLI struct {
	configPath string
	file       string
	pass       passSource
	workFactor int
}

func newVaultCmd() *cobra.Command {
	v := &vaultCLI{}
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "The key vault: BIP39 mnemonic, SLIP-0010 keys, encrypted blobs",
		Long: `The vault is the node's root of trust: a BIP39 mnemonic from which every key
derives (SLIP-0010, Ed25519, hardened paths):

  m/74'/0'/0'/0'      node identity
  m/74'/0'/0'/N'      device N
  m/74'/0'/1'/0'      SSH host key
  m/74'/2'/0'/(V-2)'  AES-256-GCM key of blob version V (V >= 2)

The mnemonic is kept in the vault file (default: vault.age in the node's data folder,
[vault] file in the config), encrypted with age under a passphrase (scrypt). The
passphrase is asked on the terminal, or read with --passphrase-file FILE or
--passphrase-fd N; never from the environment.

"alknet init --vault" creates a node whose keys come from a new vault; set
[vault] enabled = true to make an existing node use one.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&v.configPath, "config", "", "config file whose data folder holds the vault (default: as for serve)")
	pf.StringVar(&v.file, "vault", "", "vault file (default: [vault] file in the config's data folder)")
	v.pass.register(pf, "")
	pf.IntVar(&v.workFactor, "work-factor", vault.DefaultWorkFactor, "scrypt work factor (log2 N, 10 to 22) of a new vault file: each step up doubles the time and memory an unlock (and a guess) costs")
	cmd.AddCommand(v.initCmd(), v.restoreCmd(), v.deriveCmd(), v.mnemonicToSeedCmd(),
		v.encryptCmd(), v.decryptCmd(), v.rotateCmd(), v.pubkeyCmd())
	return cmd
}

// path is the vault file: --vault, or the config's [vault] file in its data folder.
func (v *vaultCLI) path() (string, error) {
	if v.file != "" {
		return v.file, nil
	}
	cfg, err := loadConfig(v.configPath)
	if err != nil {
		return "", err
	}
	return cfg.dataPath(cfg.Vault.FileName()), nil
}

// open reads the vault file and returns an unlocked vault; the caller locks it.
func (v *vaultCLI) open() (*vault.Vault, error) {
	path, err := v.path()
	if err != nil {
		return nil, err
	}
	return unlockVaultFile(path, &v.pass)
}

// unlockVaultFile asks for the passphrase, reads the vault file and unlocks a vault.
func unlockVaultFile(path string, pass *passSource) (*vault.Vault, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no vault file at %s: create one with \"alknet vault init\" or \"alknet vault restore\"", path)
		}
		return nil, err
	}
	p, err := pass.read(fmt.Sprintf("Passphrase for %s: ", path), false)
	if err != nil {
		return nil, err
	}
	m, err := vault.ReadFile(path, p)
	vault.Wipe(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer m.Wipe()
	vv := vault.New(nil)
	if err := vv.UnlockMnemonic(m, nil); err != nil {
		return nil, err
	}
	return vv, nil
}

// createVaultFile asks for a new passphrase and writes m to path.
func createVaultFile(path string, m *vault.Mnemonic, pass *passSource, overwrite bool, workFactor int) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it (use --force to replace it)", path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	p, err := pass.read(fmt.Sprintf("New passphrase for %s: ", path), true)
	if err != nil {
		return err
	}
	defer vault.Wipe(p)
	return vault.WriteFile(path, m, p, &vault.FileOptions{Overwrite: overwrite, WorkFactor: workFactor})
}

// vaultSummary describes the keys a mnemonic gives a node.
func vaultSummary(m *vault.Mnemonic) (nodeID core.NodeID, hostKey string, err error) {
	seed := m.Seed(nil)
	defer seed.Wipe()
	id, err := vault.DeriveEd25519(seed.Bytes(), vault.IdentityPath)
	if err != nil {
		return "", "", err
	}
	defer id.Wipe()
	host, err := vault.DeriveEd25519(seed.Bytes(), vault.SSHHostKeyPath)
	if err != nil {
		return "", "", err
	}
	defer host.Wipe()
	line, err := openSSHLine(host.PublicKey)
	return core.NodeIDOf(id.PublicKey), line, err
}

func openSSHLine(pub ed25519.PublicKey) (string, error) {
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
}

const mnemonicWarning = `Write these words down, in order, and keep them offline. They are shown only once.
Anyone who has them has every key of this node; with them you can restore the node
anywhere ("alknet vault restore", or "alknet init --vault --vault-restore").`

func (v *vaultCLI) initCmd() *cobra.Command {
	var words int
	var force bool
	cmd := &cobra.Command{
		Use:   "init [--words 24] [--force]",
		Short: "Create a vault file with a new mnemonic and show the mnemonic once",
		Long: `Generate a new BIP39 mnemonic, store it in the vault file encrypted under a
passphrase (asked twice on the terminal, or --passphrase-file / --passphrase-fd), and
print the mnemonic once on stdout, with a warning on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := v.path()
			if err != nil {
				return err
			}
			m, err := vault.NewMnemonic(words)
			if err != nil {
				return err
			}
			defer m.Wipe()
			if err := createVaultFile(path, m, &v.pass, force, v.workFactor); err != nil {
				return err
			}
			nodeID, host, err := vaultSummary(m)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			fmt.Fprintf(errw, "Created %s.\n%s\n\n", path, mnemonicWarning)
			out := cmd.OutOrStdout()
			out.Write(m.Bytes())
			fmt.Fprintln(out)
			fmt.Fprintf(errw, "\nnode ID:       %s\nSSH host key:  %s\n", nodeID, host)
			return nil
		},
	}
	cmd.Flags().IntVar(&words, "words", 24, "mnemonic length: 12, 15, 18, 21 or 24 words")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing vault file")
	return cmd
}

func (v *vaultCLI) restoreCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore [--force] < mnemonic",
		Short: "Create a vault file from an existing mnemonic read from stdin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := v.path()
			if err != nil {
				return err
			}
			phrase, err := readMnemonicInput(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			m, err := vault.ParseMnemonic(phrase)
			vault.Wipe(phrase)
			if err != nil {
				return err
			}
			defer m.Wipe()
			if err := createVaultFile(path, m, &v.pass, force, v.workFactor); err != nil {
				return err
			}
			nodeID, host, err := vaultSummary(m)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (%d words)\nnode ID:       %s\nSSH host key:  %s\n", path, m.Words(), nodeID, host)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing vault file")
	return cmd
}

// deriveOutput is what "vault derive --json" prints. public_key is in SLIP-0010's
// published form (0x00 and the 32-byte key), so the spec's vectors compare as strings;
// ed25519_public_key is the bare 32-byte key that ed25519.NewKeyFromSeed(private_key)
// gives.
type deriveOutput struct {
	Path             string `json:"path"`
	PrivateKey       string `json:"private_key"`
	PublicKey        string `json:"public_key"`
	ChainCode        string `json:"chain_code"`
	Ed25519PublicKey string `json:"ed25519_public_key"`
}

func (v *vaultCLI) deriveCmd() *cobra.Command {
	var pathFlag, seedHex string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "derive --path P [--seed-hex HEX] [--json]",
		Short: "Derive the Ed25519 key at a path (SLIP-0010) and print it in hex",
		Long: `Derive the SLIP-0010 Ed25519 key at --path (such as m/74'/0'/0'/0'; ' or h marks a
hardened index, and every index must be hardened) and print the path, the private key
(the RFC 8032 32-byte private key), the public key and the chain code in hex.
public_key is written as SLIP-0010's vectors write it: 00 followed by the 32-byte
Ed25519 key; ed25519_public_key is the bare 32 bytes.

With --seed-hex the key derives from that seed (16 to 64 bytes) and no vault is
needed; otherwise the vault file is unlocked. The output holds a private key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := vault.ParsePath(strings.TrimSpace(pathFlag))
			if err != nil {
				return err
			}
			var k *vault.Ed25519Key
			if cmd.Flags().Changed("seed-hex") {
				seed, err := hex.DecodeString(strings.TrimSpace(seedHex))
				if err != nil {
					return fmt.Errorf("--seed-hex is not hex: %w", err)
				}
				k, err = vault.DeriveEd25519(seed, p)
				vault.Wipe(seed)
				if err != nil {
					return err
				}
			} else {
				vv, err := v.open()
				if err != nil {
					return err
				}
				k, err = vv.DeriveEd25519(p)
				vv.Lock()
				if err != nil {
					return err
				}
			}
			defer k.Wipe()
			o := deriveOutput{
				Path:       k.Path.String(),
				PrivateKey: hex.EncodeToString(k.PrivateKey.Bytes()),
				PublicKey:  "00" + hex.EncodeToString(k.PublicKey),
				ChainCode:  hex.EncodeToString(k.ChainCode.Bytes()),

				Ed25519PublicKey: hex.EncodeToString(k.PublicKey),
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.Marshal(o)
				fmt.Fprintf(out, "%s\n", b)
				return nil
			}
			fmt.Fprintf(out, "path:               %s\nprivate_key:        %s\npublic_key:         %s\nchain_code:         %s\ned25519_public_key: %s\n", o.Path, o.PrivateKey, o.PublicKey, o.ChainCode, o.Ed25519PublicKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&pathFlag, "path", "", "derivation path, e.g. m/74'/0'/0'/0'")
	cmd.Flags().StringVar(&seedHex, "seed-hex", "", "derive from this BIP39 seed (hex) instead of the vault")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: path, private_key, public_key, chain_code, ed25519_public_key")
	cmd.MarkFlagRequired("path")
	return cmd
}

func (v *vaultCLI) mnemonicToSeedCmd() *cobra.Command {
	var passphrase string
	cmd := &cobra.Command{
		Use:   "mnemonic-to-seed [--passphrase P] < mnemonic",
		Short: "Print the BIP39 seed (hex) of a mnemonic read from stdin",
		Long: `Read a BIP39 English mnemonic from stdin, check its words and checksum, and print
its 64-byte seed in hex: PBKDF2-HMAC-SHA512, 2048 iterations, salt "mnemonic" followed
by the passphrase, both NFKD-normalized. --passphrase is BIP39's optional passphrase
(the "25th word"), not the vault file's. No vault is needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			phrase, err := readMnemonicInput(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			m, err := vault.ParseMnemonic(phrase)
			vault.Wipe(phrase)
			if err != nil {
				return err
			}
			defer m.Wipe()
			seed := m.Seed([]byte(passphrase))
			defer seed.Wipe()
			fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(seed.Bytes()))
			return nil
		},
	}
	cmd.Flags().StringVar(&passphrase, "passphrase", "", "BIP39 passphrase (default: none)")
	return cmd
}

// readBlob reads one blob's JSON from r.
func readBlob(r io.Reader) (*vault.EncryptedData, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<20+1))
	if err != nil {
		return nil, err
	}
	return vault.ParseEncryptedData(b)
}

func writeBlob(w io.Writer, d *vault.EncryptedData) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (v *vaultCLI) encryptCmd() *cobra.Command {
	var version uint32
	cmd := &cobra.Command{
		Use:   "encrypt [--key-version V] < plaintext > blob.json",
		Short: "Encrypt stdin into a blob (AES-256-GCM under the key of version V)",
		Long: `Encrypt stdin with the vault's AES-256-GCM key of version V (default 2; key path
m/74'/2'/0'/(V-2)') and print the blob as JSON: key_version, salt, iv, data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := vault.EncryptionKeyPath(version); err != nil {
				return err
			}
			plain, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 48<<20+1))
			if err != nil {
				return err
			}
			defer vault.Wipe(plain)
			if len(plain) > 48<<20 {
				return errors.New("plaintext larger than 48 MiB")
			}
			vv, err := v.open()
			if err != nil {
				return err
			}
			defer vv.Lock()
			d, err := vv.Encrypt(plain, version)
			if err != nil {
				return err
			}
			return writeBlob(cmd.OutOrStdout(), d)
		},
	}
	cmd.Flags().Uint32Var(&version, "key-version", 2, "key version (2 or more)")
	return cmd
}

func (v *vaultCLI) decryptCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "decrypt < blob.json > plaintext",
		Short: "Decrypt a blob read from stdin with the key of its own version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readBlob(cmd.InOrStdin())
			if err != nil {
				return err
			}
			vv, err := v.open()
			if err != nil {
				return err
			}
			defer vv.Lock()
			plain, err := vv.Decrypt(d)
			if err != nil {
				return err
			}
			defer vault.Wipe(plain)
			_, err = cmd.OutOrStdout().Write(plain)
			return err
		},
	}
}

func (v *vaultCLI) rotateCmd() *cobra.Command {
	var to uint32
	cmd := &cobra.Command{
		Use:   "rotate --to V < blob.json > blob.json",
		Short: "Re-encrypt a blob read from stdin under the key of version V",
		Long: `Decrypt a blob with the key of its own version and encrypt it again under the key
of version --to. Blobs of older versions stay readable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := vault.EncryptionKeyPath(to); err != nil {
				return err
			}
			d, err := readBlob(cmd.InOrStdin())
			if err != nil {
				return err
			}
			vv, err := v.open()
			if err != nil {
				return err
			}
			defer vv.Lock()
			nd, err := vv.Rotate(d, to)
			if err != nil {
				return err
			}
			return writeBlob(cmd.OutOrStdout(), nd)
		},
	}
	cmd.Flags().Uint32Var(&to, "to", 0, "key version to re-encrypt under (2 or more)")
	cmd.MarkFlagRequired("to")
	return cmd
}

func (v *vaultCLI) pubkeyCmd() *cobra.Command {
	var pathFlag, key, format string
	cmd := &cobra.Command{
		Use:   "pubkey [--key node|ssh-host|device:N | --path P] [--format hex|node-id|openssh]",
		Short: "Print a public key from the vault",
		Long: `Print the public key at a path: --key node (m/74'/0'/0'/0', the default), ssh-host
(m/74'/0'/1'/0') or device:N (m/74'/0'/0'/N'), or any --path. --format hex (default)
prints 64 hex digits, node-id the z-base-32 node ID, openssh an authorized_keys line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p vault.Path
			var err error
			switch {
			case pathFlag != "" && cmd.Flags().Changed("key"):
				return errors.New("give --key or --path, not both")
			case pathFlag != "":
				p, err = vault.ParsePath(strings.TrimSpace(pathFlag))
			case key == "node":
				p = vault.IdentityPath
			case key == "ssh-host":
				p = vault.SSHHostKeyPath
			case strings.HasPrefix(key, "device:"):
				var n uint64
				n, err = strconv.ParseUint(strings.TrimPrefix(key, "device:"), 10, 31)
				if err != nil {
					return fmt.Errorf("--key %s: want device:N with N a number below 2^31", key)
				}
				p, err = vault.DevicePath(uint32(n))
			default:
				return fmt.Errorf("--key %q: want node, ssh-host or device:N", key)
			}
			if err != nil {
				return err
			}
			switch format {
			case "hex", "node-id", "openssh":
			default:
				return fmt.Errorf("--format %q: want hex, node-id or openssh", format)
			}
			vv, err := v.open()
			if err != nil {
				return err
			}
			pub, err := vv.PublicKey(p)
			vv.Lock()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "node-id":
				fmt.Fprintln(out, core.NodeIDOf(pub))
			case "openssh":
				line, err := openSSHLine(pub)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, line)
			default:
				fmt.Fprintln(out, hex.EncodeToString(pub))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pathFlag, "path", "", "derivation path, e.g. m/74'/0'/0'/3'")
	cmd.Flags().StringVar(&key, "key", "node", "node, ssh-host or device:N")
	cmd.Flags().StringVar(&format, "format", "hex", "hex, node-id or openssh")
	return cmd
}
