package main

import (
	"fmt"

	"github.com/alkdev/alknet/fs"
)

// registerFS serves the blob store on alknet/fs. The store folder is [fs] store,
// relative to the data folder; [fs] public_tags reloads on SIGHUP.
func registerFS(a *app) error {
	dir := a.cfg.dataPath(a.cfg.FS.StoreDir())
	store, err := fs.Open(dir, a.log)
	if err != nil {
		return fmt.Errorf("blob store %s: %w", dir, err)
	}
	srv := fs.NewServer(store, a.cfg.FS, a.log)
	a.onClose(store.Close)
	a.onReload(func(c *Config) error {
		srv.SetPublicTags(c.FS.PublicTags)
		return nil
	})
	return a.handle(srv, fs.ALPN)
}
