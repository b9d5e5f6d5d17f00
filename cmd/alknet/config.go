package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
	"github.com/alkdev/alknet/fs"
	"github.com/alkdev/alknet/sftp"
	"github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/vault"
	"github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultConfig []byte

// Config is the whole alknet.toml. Each module adds its section here.
type Config struct {
	Node   NodeConfig        `toml:"node"`
	Limits core.Limits       `toml:"limits"`
	Peers  []core.PeerConfig `toml:"peers"`
	Call   call.Config       `toml:"call"`
	SSH    ssh.Config        `toml:"ssh"`
	Vault  vault.Config      `toml:"vault"`
	DNS    dns.Config        `toml:"dns"`
	FS     fs.Config         `toml:"fs"`
	SFTP   sftp.Config       `toml:"sftp"`

	// path is the file this was read from; "" for the embedded default.
	path string
}

// NodeConfig is the [node] section.
type NodeConfig struct {
	Listen          string        `toml:"listen"`
	DataDir         string        `toml:"data_dir"`
	KeyFile         string        `toml:"key_file"`
	KeyExchange     string        `toml:"key_exchange"`
	LogLevel        string        `toml:"log_level"`
	LogFormat       string        `toml:"log_format"`
	ShutdownTimeout core.Duration `toml:"shutdown_timeout"`
}

// parseConfig decodes b strictly over the embedded defaults: an unknown key is an error
// that names its line.
func parseConfig(b []byte, name string) (*Config, error) {
	// The embedded default is checked by TestDefaultConfigValueTypes, not on every load.
	if err := checkValueTypes(b, name); err != nil {
		return nil, err
	}
	cfg := new(Config)
	for _, src := range [][]byte{defaultConfig, b} {
		dec := toml.NewDecoder(bytes.NewReader(src)).DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			return nil, configError(name, err)
		}
	}
	if cfg.Node.Listen == "" {
		return nil, fmt.Errorf("%s: node.listen is empty", name)
	}
	return cfg, nil
}

func configError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var lines []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			lines = append(lines, fmt.Sprintf("%s:%d: unknown key %q", name, row, strings.Join(e.Key(), ".")))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return fmt.Errorf("%s:%d: %v", name, row, de)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// loadConfig reads the config at path. With path empty it looks in the usual places
// (./alknet.toml, then the user's config folder) and falls back to the embedded default.
func loadConfig(path string) (*Config, error) {
	if path == "" {
		path = findConfig()
	}
	if path == "" {
		cfg, err := parseConfig(nil, "embedded default")
		if err != nil {
			return nil, err
		}
		dir, err := userDataDir()
		if err != nil {
			return nil, err
		}
		cfg.Node.DataDir = dir
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(b, path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg.path = abs
	if cfg.Node.DataDir == "" {
		cfg.Node.DataDir = filepath.Dir(abs)
	} else {
		cfg.Node.DataDir = cfg.resolve(cfg.Node.DataDir)
	}
	return cfg, nil
}

func findConfig() string {
	candidates := []string{"alknet.toml"}
	if dir, err := userConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "alknet.toml"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return ""
}

// resolve makes p absolute, relative to the config file's folder, or the data folder.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	base := c.Node.DataDir
	if c.path != "" && base == "" {
		base = filepath.Dir(c.path)
	}
	return filepath.Join(base, p)
}

// dataPath returns p resolved against the data folder.
func (c *Config) dataPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Node.DataDir, p)
}

func userConfigDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "alknet"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home folder for alknet's config: %w", err)
	}
	return filepath.Join(home, ".config", "alknet"), nil
}

func userDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "alknet"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home folder for alknet's data: %w", err)
	}
	return filepath.Join(home, ".local", "share", "alknet"), nil
}

// defaultIdentityPath is the user's own client key, created on first use.
func defaultIdentityPath() (string, error) {
	dir, err := userConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "client.key"), nil
}

func (c *Config) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Node.LogLevel)); err != nil {
		return nil, fmt.Errorf("node.log_level %q: want debug, info, warn or error", c.Node.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Node.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("node.log_format %q: want text or json", c.Node.LogFormat)
}

func (c *Config) shutdownTimeout() time.Duration {
	if d := c.Node.ShutdownTimeout.Std(); d > 0 {
		return d
	}
	return 10 * time.Second
}
