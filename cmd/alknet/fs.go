package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newFSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fs",
		Short: "Put and get blobs and folders in a BLAKE3 content-addressed store",
		Long: `Talk to the blob store a node serves on ALPN alknet/fs, or with --store DIR to a
store folder directly (no server; the ADDR argument is then left out).

Blobs are named by their BLAKE3 hash (the hex b3sum prints). Every byte fetched is
verified against it in 16 KiB groups before it is written.

  alknet fs put ADDR FILE-OR-FOLDER...     upload, print "HASH  PATH" per path
  alknet fs get ADDR HASH|TAG OUT          download a file or restore a folder (resumes)
  alknet fs cat ADDR HASH|TAG              write a blob to stdout
  alknet fs ls ADDR                        list tags
  alknet fs tag ADDR NAME HASH             set a tag (--delete to remove one)
  alknet fs gc ADDR                        remove blobs no tag reaches
  alknet fs gc --store DIR                 the same on a local store`,
	}
	cmd.AddCommand(newFSPutCmd(), newFSGetCmd(), newFSCatCmd(), newFSLsCmd(), newFSTagCmd(), newFSGCCmd())
	return cmd
}

// fsTarget is either a remote node (ADDR) or a local store (--store DIR).
type fsTarget struct {
	cf    clientFlags
	store string
}

func (t *fsTarget) register(cmd *cobra.Command) {
	t.cf.register(cmd.Flags())
	cmd.Flags().StringVar(&t.store, "store", "", "use the store in this folder directly instead of a node (leave out ADDR)")
}

// args checks the argument count: n positional arguments after ADDR (more with
// variadic), ADDR left out with --store.
func (t *fsTarget) args(n int, variadic bool) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		want := n
		if t.store == "" {
			want++
		}
		if len(args) < want || (!variadic && len(args) > want) {
			if t.store == "" {
				return fmt.Errorf("%s: want ADDR and %d more argument(s) (or --store DIR instead of ADDR); see --help", cmd.Name(), n)
			}
			return fmt.Errorf("%s: with --store, want %d argument(s) and no ADDR; see --help", cmd.Name(), n)
		}
		return nil
	}
}

// fsBackend is what the commands need from a store, local or remote.
type fsBackend interface {
	fs.Source
	upload(ctx context.Context, tag string) (fs.Sink, func() error, func(), error)
	tags(ctx context.Context) ([]fs.Tag, error)
	setTag(ctx context.Context, name string, hf fs.HashAndFormat) error
	deleteTag(ctx context.Context, name string) error
	gc(ctx context.Context) (fs.GCStats, error)
	close()
}

// open connects to the target and returns the remaining arguments.
func (t *fsTarget) open(args []string) (fsBackend, []string, error) {
	if t.store != "" {
		s, err := fs.Open(t.store, nil)
		if errors.Is(err, fs.ErrLocked) {
			return nil, nil, fmt.Errorf("%w (a running node serves it: use its ADDR instead of --store)", err)
		}
		if err != nil {
			return nil, nil, err
		}
		return &localFS{s}, args, nil
	}
	d, err := t.cf.dialer()
	if err != nil {
		return nil, nil, err
	}
	addr := args[0]
	if _, _, err := core.ParseAddr(addr); err != nil {
		return nil, nil, err
	}
	c := fs.NewClient(func(ctx context.Context) (core.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return d.Dial(dctx, addr, fs.ALPN)
	})
	return &remoteFS{c}, args[1:], nil
}

type localFS struct{ *fs.Store }

func (l *localFS) upload(ctx context.Context, tag string) (fs.Sink, func() error, func(), error) {
	b := l.NewBatch(ctx)
	return b, nil, func() { b.Close() }, nil
}
func (l *localFS) tags(context.Context) ([]fs.Tag, error) { return l.Tags(), nil }
func (l *localFS) setTag(_ context.Context, name string, hf fs.HashAndFormat) error {
	return l.SetTag(name, hf)
}
func (l *localFS) deleteTag(_ context.Context, name string) error { return l.DeleteTag(name) }
func (l *localFS) gc(ctx context.Context) (fs.GCStats, error)     { return l.GC(ctx) }
func (l *localFS) close()                                         { l.Close() }

type remoteFS struct{ *fs.Client }

func (r *remoteFS) upload(ctx context.Context, tag string) (fs.Sink, func() error, func(), error) {
	u, err := r.NewUpload(ctx, tag)
	if err != nil {
		return nil, nil, nil, err
	}
	return u, u.Commit, func() { u.Close() }, nil
}
func (r *remoteFS) tags(ctx context.Context) ([]fs.Tag, error) { return r.Tags(ctx) }
func (r *remoteFS) setTag(ctx context.Context, name string, hf fs.HashAndFormat) error {
	return r.SetTag(ctx, name, hf)
}
func (r *remoteFS) deleteTag(ctx context.Context, name string) error { return r.DeleteTag(ctx, name) }
func (r *remoteFS) gc(ctx context.Context) (fs.GCStats, error)       { return r.GC(ctx) }
func (r *remoteFS) close()                                           { r.Close() }

// resolve turns a hash or a tag name into what to fetch.
func resolve(ctx context.Context, b fsBackend, arg string) (fs.HashAndFormat, error) {
	if h, err := fs.ParseHash(arg); err == nil {
		f, err := fs.DetectFormat(ctx, b, h)
		return fs.HashAndFormat{Hash: h, Format: f}, err
	}
	tags, err := b.tags(ctx)
	if err != nil {
		return fs.HashAndFormat{}, err
	}
	for _, t := range tags {
		if t.Name == arg {
			return t.HashAndFormat, nil
		}
	}
	return fs.HashAndFormat{}, fmt.Errorf("%q is neither a hash (64 hex digits) nor a tag", arg)
}

// progressBar draws a one-line progress bar on stderr when it is a terminal, and
// nothing otherwise.
type progressBar struct {
	label string
	on    bool
	start time.Time
	mu    sync.Mutex
	last  time.Time
}

func newProgress(label string) *progressBar {
	return &progressBar{label: label, on: term.IsTerminal(int(os.Stderr.Fd())), start: time.Now()}
}

func (p *progressBar) update(done, total uint64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	line := fmt.Sprintf("%s %s", p.label, human(done))
	if total > 0 {
		const width = 24
		fill := int(float64(width) * float64(done) / float64(total))
		fill = min(fill, width)
		line = fmt.Sprintf("%s [%s%s] %3.0f%% %s/%s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			100*float64(done)/float64(total), human(done), human(total))
	}
	fmt.Fprintf(os.Stderr, "\r\033[K%s %s/s", line, human(uint64(rate)))
}

func (p *progressBar) finish() {
	if p.on {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}

func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newFSPutCmd() *cobra.Command {
	var t fsTarget
	var tag string
	var noTag, asJSON bool
	cmd := &cobra.Command{
		Use:   "put ADDR PATH...",
		Short: "Upload files and folders; print one line per path with its hash",
		Long: `Upload each PATH: a file becomes a blob, a folder a collection (every file,
subfolder and symlink under it; symlinks are stored, not followed). Prints
"HASH  PATH" per path (a trailing "/" marks a collection), or one JSON object per
line with --json. Each upload is tagged with the path's base name (so GC keeps it)
unless --tag names the tag (one PATH only) or --no-tag leaves it untagged. Needs
scope fs:write on a node, and fs:read as well for a tag the node serves publicly
(public_tags): publishing grants anonymous reads, so only a reader may do it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, paths, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			if tag != "" && len(paths) > 1 {
				return errors.New("put: --tag works with one PATH only")
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			for _, p := range paths {
				name := tag
				if name == "" && !noTag {
					name = filepath.Base(filepath.Clean(p))
				}
				hf, err := putOne(ctx, b, p, name)
				if err != nil {
					return err
				}
				if asJSON {
					line, _ := json.Marshal(struct {
						Path   string    `json:"path"`
						Hash   fs.Hash   `json:"hash"`
						Format fs.Format `json:"format"`
						Tag    string    `json:"tag,omitempty"`
					}{p, hf.Hash, hf.Format, name})
					fmt.Fprintf(out, "%s\n", line)
					continue
				}
				suffix := ""
				if hf.Format == fs.FormatCollection {
					suffix = "/"
				}
				fmt.Fprintf(out, "%s  %s%s\n", hf.Hash, p, suffix)
			}
			return nil
		},
	}
	t.register(cmd)
	cmd.Args = t.args(1, true)
	cmd.Flags().StringVar(&tag, "tag", "", "tag name (default: the path's base name)")
	cmd.Flags().BoolVar(&noTag, "no-tag", false, "do not tag (the next GC removes the upload)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per path")
	return cmd
}

func putOne(ctx context.Context, b fsBackend, path, tag string) (fs.HashAndFormat, error) {
	if tag != "" {
		if err := fs.ValidTagName(tag); err != nil {
			return fs.HashAndFormat{}, err
		}
	}
	remoteTag := ""
	if _, ok := b.(*remoteFS); ok {
		remoteTag = tag // the server tags on commit, while the upload still pins
	}
	sink, commit, abort, err := b.upload(ctx, remoteTag)
	if err != nil {
		return fs.HashAndFormat{}, err
	}
	defer abort()
	bar := newProgress(filepath.Base(path))
	hf, err := fs.PutPath(ctx, sink, path, bar.update)
	bar.finish()
	if err != nil {
		return hf, err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return hf, err
		}
	} else if tag != "" {
		if err := b.setTag(ctx, tag, hf); err != nil {
			return hf, err
		}
	}
	return hf, nil
}

func newFSGetCmd() *cobra.Command {
	var t fsTarget
	cmd := &cobra.Command{
		Use:   "get ADDR HASH|TAG OUT",
		Short: "Download a blob to a file, or restore a collection into a folder",
		Long: `Fetch HASH (or the blob tag TAG names) and verify every 16 KiB group before it
is written. A blob goes to the file OUT; until it is complete the data sits in
OUT.part with a sidecar OUT.part.json, and running the same command again resumes
from the verified prefix. A collection is restored into the folder OUT; files
already there with the right content are kept, so it resumes file by file. Paths
that would leave OUT, and symlinks pointing outside it, are refused.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, rest, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			ctx := cmd.Context()
			hf, err := resolve(ctx, b, rest[0])
			if err != nil {
				return err
			}
			out := rest[1]
			bar := newProgress(filepath.Base(out))
			defer bar.finish()
			if hf.Format == fs.FormatCollection {
				return fs.GetTree(ctx, b, hf.Hash, out, bar.update)
			}
			resumed, err := fs.GetFile(ctx, b, hf.Hash, out, bar.update)
			if resumed > 0 {
				bar.finish()
				fmt.Fprintf(cmd.ErrOrStderr(), "resumed after %d verified bytes\n", resumed)
			}
			return err
		},
	}
	t.register(cmd)
	cmd.Args = t.args(2, false)
	return cmd
}

func newFSCatCmd() *cobra.Command {
	var t fsTarget
	var ranges string
	cmd := &cobra.Command{
		Use:   "cat ADDR HASH|TAG",
		Short: "Write a blob to stdout, verified",
		Long: `Write blob HASH (or the blob tag TAG names) to stdout. Only verified bytes are
written: on corrupt data it stops before the bad 16 KiB group and exits non-zero.
--range selects bytes: comma-separated inclusive ranges such as 0-1023,4096-.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			rs := fs.All()
			if ranges != "" {
				var err error
				if rs, err = fs.ParseRanges(ranges); err != nil {
					return err
				}
			}
			b, rest, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			ctx := cmd.Context()
			h, err := fs.ParseHash(rest[0])
			if err != nil {
				hf, rerr := resolve(ctx, b, rest[0])
				if rerr != nil {
					return rerr
				}
				h = hf.Hash
			}
			w := cmd.OutOrStdout()
			_, err = b.Fetch(ctx, h, rs, func(_ uint64, p []byte) error {
				_, err := w.Write(p)
				return err
			})
			return err
		},
	}
	t.register(cmd)
	cmd.Args = t.args(1, false)
	cmd.Flags().StringVar(&ranges, "range", "", "byte ranges to print, such as 0-1023,4096-")
	return cmd
}

func newFSLsCmd() *cobra.Command {
	var t fsTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls ADDR",
		Short: "List tags",
		Long: `List the store's tags: "NAME  HASH  FORMAT" per line, or JSON with --json. A
client without fs:read sees only public tags.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, _, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			tags, err := b.tags(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if tags == nil {
					tags = []fs.Tag{}
				}
				enc := json.NewEncoder(out)
				return enc.Encode(tags)
			}
			for _, tg := range tags {
				fmt.Fprintf(out, "%s  %s  %s\n", tg.Name, tg.Hash, tg.Format)
			}
			return nil
		},
	}
	t.register(cmd)
	cmd.Args = t.args(0, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newFSTagCmd() *cobra.Command {
	var t fsTarget
	var format string
	var del bool
	cmd := &cobra.Command{
		Use:   "tag ADDR NAME HASH",
		Short: "Set a tag (or remove one with --delete)",
		Long: `Point tag NAME at blob HASH; GC keeps what tags reach. --format says how to read
the blob (raw, hashseq or collection); by default a blob that parses as a collection
is tagged as one. With --delete, give only NAME and the tag is removed. Setting a
tag needs scopes fs:write and fs:read on a node (a tag can point only at what the
caller could read); deleting one needs fs:write.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, rest, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			ctx := cmd.Context()
			if del {
				if len(rest) != 1 {
					return errors.New("tag --delete: want NAME only")
				}
				return b.deleteTag(ctx, rest[0])
			}
			if len(rest) != 2 {
				return errors.New("tag: want NAME and HASH")
			}
			h, err := fs.ParseHash(rest[1])
			if err != nil {
				return err
			}
			hf := fs.HashAndFormat{Hash: h}
			if format == "" || format == "auto" {
				if hf.Format, err = fs.DetectFormat(ctx, b, h); errors.Is(err, fs.ErrForbidden) {
					return fmt.Errorf("tag: setting a tag needs scopes fs:read and fs:write (reading tells the blob's format, and a tag may only point at what its setter can read): %w", err)
				} else if err != nil {
					return err
				}
			} else if hf.Format, err = fs.ParseFormat(format); err != nil {
				return err
			}
			return b.setTag(ctx, rest[0], hf)
		},
	}
	t.register(cmd)
	cmd.Args = t.args(1, true)
	cmd.Flags().StringVar(&format, "format", "auto", "raw, hashseq, collection or auto")
	cmd.Flags().BoolVar(&del, "delete", false, "remove the tag NAME")
	return cmd
}

func newFSGCCmd() *cobra.Command {
	var t fsTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "gc ADDR | gc --store DIR",
		Short: "Remove blobs no tag reaches",
		Long: `Garbage-collect the store: remove every blob that no tag reaches (following the
files of collections and the hashes of hash sequences). Uploads in progress are
safe. On a node it needs scope admin; with --store the store must not be in use by
a running node.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, _, err := t.open(args)
			if err != nil {
				return err
			}
			defer b.close()
			st, err := b.gc(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs (%s), kept %d\n", st.Removed, human(uint64(st.Bytes)), st.Kept)
			return nil
		},
	}
	t.register(cmd)
	cmd.Args = t.args(0, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
