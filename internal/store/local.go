package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Local is a Store in a directory laid out like a storage account:
// containers are the top-level directories of root and a blob name is a
// path below its container, e.g.
//
//	root/am-signinlogs/WorkspaceResourceId=/subscriptions/.../y=2026/m=11/d=20/h=10/m=00/PT05M.json
//
// Writes go to a temporary file in the blob's directory that is renamed over
// the blob, so readers see the old or the new content, never a mix.
//
// ETags are derived from the content (a SHA-256 prefix), so they change
// whenever the content does; unlike Azure, writing back identical content
// gives the same ETag again. Hashes are cached per file identity (device,
// inode, size, mtime, ctime) so repeated Stat/ReadAt calls stay cheap.
//
// Conditional writes and deletes are serialised per blob, within the process
// by a mutex and across processes by flock(2) on a lock file under
// root/.tokenpivot-locks (one small file per blob ever written, never
// removed: removing a lock file while another process waits on it would let
// two writers in). On systems without flock only the in-process lock applies.
//
// A local directory cannot hold both a blob "a" and a blob "a/b"; such a
// write fails with an error naming the blob.
type Local struct {
	root  string
	locks keyedMutex
	etags etagCache
}

const (
	// reservedPrefix marks the temporary and lock files Local creates;
	// blob names with a segment starting with it are refused and never listed.
	reservedPrefix = ".tokenpivot-"
	tempPattern    = reservedPrefix + "tmp-*"
	lockDir        = reservedPrefix + "locks"
	// stageDir holds files being written: creating them in a small folder
	// is far cheaper than in a blob folder holding thousands of files.
	stageDir = reservedPrefix + "staging"
)

var _ Store = (*Local)(nil)

// NewLocal returns a Store over the existing directory root.
func NewLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store: local root %q: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("store: local root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: local root %s: not a directory", abs)
	}
	return &Local{root: abs}, nil
}

// ServiceURL is "": a local directory raises no events.
func (l *Local) ServiceURL() string { return "" }

// Root returns the absolute directory the store lives in.
func (l *Local) Root() string { return l.root }

// URL returns the blob's file path.
func (l *Local) URL(container, name string) string {
	return filepath.Join(l.root, container, filepath.FromSlash(name))
}

// path validates container and name and returns the blob's file path.
func (l *Local) path(container, name string) (string, error) {
	if err := CheckContainer(container); err != nil {
		return "", err
	}
	if err := CheckName(name); err != nil {
		return "", err
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, reservedPrefix) {
			return "", fmt.Errorf("store: blob name %q: segments starting with %q are reserved for the local store", name, reservedPrefix)
		}
	}
	return l.URL(container, name), nil
}

// containerDir returns the container's directory, or ErrNotExist.
func (l *Local) containerDir(container string) (string, error) {
	if err := CheckContainer(container); err != nil {
		return "", err
	}
	dir := filepath.Join(l.root, container)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("store: container %s: %w", dir, ErrNotExist)
	}
	return dir, nil
}

// notExist turns "no such file" and "a parent is a file" into ErrNotExist.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// open opens the blob's file for reading, returning ErrNotExist for a
// missing blob, container or a folder of blobs.
func (l *Local) open(op, container, name string) (*os.File, os.FileInfo, error) {
	p, err := l.path(container, name)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if notExist(err) {
			return nil, nil, fmt.Errorf("store: %s %s: %w", op, p, ErrNotExist)
		}
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("store: %s %s: a folder, not a blob: %w", op, p, ErrNotExist)
	}
	return f, fi, nil
}

// props builds the blob's properties from an open file, hashing the content
// unless the cache knows this version of the file.
func (l *Local) props(container, name string, f *os.File, fi os.FileInfo) (Properties, error) {
	key, ok := fileKeyOf(f.Name(), fi)
	etag, cached := "", false
	if ok {
		etag, cached = l.etags.get(key)
	}
	if !cached {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
			return Properties{}, fmt.Errorf("store: hash %s: %w", f.Name(), err)
		}
		etag = etagOf(h.Sum(nil))
		// Only cache when the file did not change while it was hashed.
		if fi2, err := f.Stat(); err == nil && ok {
			if key2, ok2 := fileKeyOf(f.Name(), fi2); ok2 && key2 == key {
				l.etags.put(key, etag)
			}
		}
	}
	return Properties{Container: container, Name: name, Size: fi.Size(), ETag: etag, LastModified: fi.ModTime().UTC()}, nil
}

func etagOf(sum []byte) string { return `"` + hex.EncodeToString(sum[:16]) + `"` }

// Stat returns the blob's properties, or ErrNotExist.
func (l *Local) Stat(ctx context.Context, container, name string) (Properties, error) {
	if err := ctx.Err(); err != nil {
		return Properties{}, err
	}
	f, fi, err := l.open("stat", container, name)
	if err != nil {
		return Properties{}, err
	}
	defer f.Close()
	return l.props(container, name, f, fi)
}

// ReadAt reads from the blob at off; with etag set it fails with
// ErrConditionNotMet if the blob is no longer that version.
func (l *Local) ReadAt(ctx context.Context, container, name string, p []byte, off int64, etag string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("store: read %s/%s: negative offset %d", container, name, off)
	}
	f, fi, err := l.open("read", container, name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if etag != "" {
		// The open file pins this version: renames replace the path, not it.
		pr, err := l.props(container, name, f, fi)
		if err != nil {
			return 0, err
		}
		if pr.ETag != etag {
			return 0, fmt.Errorf("store: read %s: etag %s, want %s: %w", f.Name(), pr.ETag, etag, ErrConditionNotMet)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Read no further than the size seen, so an in-place append by another
	// program cannot leak bytes of a newer version into this read.
	if off >= fi.Size() {
		return 0, io.EOF
	}
	want := int64(len(p))
	if rest := fi.Size() - off; rest < want {
		want = rest
	}
	n, err := f.ReadAt(p[:want], off)
	if err == nil && int64(n) < int64(len(p)) {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("store: read %s: %w", f.Name(), err)
	}
	return n, err
}

// Read returns the whole blob and its properties, or ErrNotExist.
func (l *Local) Read(ctx context.Context, container, name string) ([]byte, Properties, error) {
	if err := ctx.Err(); err != nil {
		return nil, Properties{}, err
	}
	f, fi, err := l.open("read", container, name)
	if err != nil {
		return nil, Properties{}, err
	}
	defer f.Close()
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, Properties{}, fmt.Errorf("store: read %s: %w", f.Name(), err)
	}
	return data, l.propsOfData(container, name, f.Name(), fi, data), nil
}

// propsOfData builds properties for content already in memory.
func (l *Local) propsOfData(container, name, path string, fi os.FileInfo, data []byte) Properties {
	sum := sha256.Sum256(data)
	etag := etagOf(sum[:])
	if key, ok := fileKeyOf(path, fi); ok {
		l.etags.put(key, etag)
	}
	return Properties{Container: container, Name: name, Size: int64(len(data)), ETag: etag, LastModified: fi.ModTime().UTC()}
}

// errFolder marks a blob name that is a folder of other blobs locally.
var errFolder = errors.New("a folder, not a blob")

// current returns the blob's properties and whether it exists, for callers
// holding the blob's lock.
func (l *Local) current(container, name, p string) (Properties, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		if notExist(err) {
			return Properties{}, false, nil
		}
		return Properties{}, false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Properties{}, false, fmt.Errorf("store: %w", err)
	}
	if fi.IsDir() {
		return Properties{}, false, fmt.Errorf("store: %s: is a folder of other blobs; a local store cannot also hold a blob of that name: %w", p, errFolder)
	}
	pr, err := l.props(container, name, f, fi)
	return pr, err == nil, err
}

// Write stores data as the blob under cond.
func (l *Local) Write(ctx context.Context, container, name string, data []byte, cond Condition) (Properties, error) {
	if err := ctx.Err(); err != nil {
		return Properties{}, err
	}
	p, err := l.path(container, name)
	if err != nil {
		return Properties{}, err
	}
	if _, err := l.containerDir(container); err != nil {
		return Properties{}, fmt.Errorf("store: write %s: %w", p, err)
	}
	if cond.IfNoneMatch == "*" && cond.IfMatch == "" {
		if pr, err := l.create(container, name, p, data); !errors.Is(err, errNoLink) {
			return pr, err
		}
	}
	unlock, err := l.lock(container, name)
	if err != nil {
		return Properties{}, err
	}
	defer unlock()
	cur, exists, err := l.current(container, name, p)
	if err != nil {
		return Properties{}, err
	}
	if err := checkCondition(cond, exists, cur.ETag); err != nil {
		return Properties{}, fmt.Errorf("store: write %s (etag %s, if-match %q, if-none-match %q): %w", p, cur.ETag, cond.IfMatch, cond.IfNoneMatch, err)
	}
	return l.replace(container, name, p, data)
}

// replace atomically swaps the blob's file for one holding data.
func (l *Local) replace(container, name, p string, data []byte) (Properties, error) {
	for _, beside := range []bool{false, true} {
		f, err := l.writeTemp(p, data, beside)
		if err != nil {
			return Properties{}, err
		}
		err = intoFolder(p, func() error { return os.Rename(f.Name(), p) })
		if err == nil {
			return l.written(container, name, p, f, data)
		}
		f.Close()
		os.Remove(f.Name())
		// A container folder on another file system: stage beside the blob.
		if !errors.Is(err, syscall.EXDEV) || beside {
			return Properties{}, fmt.Errorf("store: write %s: %w", p, err)
		}
	}
	panic("unreachable")
}

// create makes the blob only if it does not exist, without taking its
// lock: link(2) of a synced file is atomic and fails if the name exists.
// Most writes are creates (alerts, extracts, ledger entries), so this
// spares them the lock file and the flock. errNoLink means the file system
// has no hard links: the caller takes the locked path.
func (l *Local) create(container, name, p string, data []byte) (Properties, error) {
	f, named, err := l.stage(p, data)
	if err != nil {
		return Properties{}, err
	}
	link := func() error { return linkUnnamed(f, p) }
	if named {
		link = func() error { return os.Link(f.Name(), p) }
	}
	err = intoFolder(p, link)
	if named {
		os.Remove(f.Name())
	}
	switch {
	case err == nil:
		return l.written(container, name, p, f, data)
	case errors.Is(err, fs.ErrExist):
		f.Close()
		if fi, serr := os.Lstat(p); serr == nil && fi.IsDir() {
			return Properties{}, fmt.Errorf("store: %s: is a folder of other blobs; a local store cannot also hold a blob of that name: %w", p, errFolder)
		}
		return Properties{}, fmt.Errorf("store: write %s (if-none-match *): %w", p, ErrConditionNotMet)
	}
	f.Close()
	return Properties{}, errNoLink
}

// stage writes data, synced, for create to link: an unnamed file in the
// staging folder where the file system has them (Linux O_TMPFILE), else a
// named temporary file, which the caller removes once linked.
func (l *Local) stage(p string, data []byte) (f *os.File, named bool, err error) {
	dir := filepath.Join(l.root, stageDir)
	for range 5 {
		f, ok, err := writeUnnamed(dir, data)
		switch {
		case !ok:
		case errors.Is(err, fs.ErrNotExist):
			// The staging folder is made on first use (and a concurrent
			// Delete of an empty tree may remove it).
			if err := os.MkdirAll(dir, 0o755); err != nil && !folderRaced(err) {
				return nil, false, fmt.Errorf("store: write %s: %w", p, err)
			}
			continue
		case err != nil:
			return nil, false, fmt.Errorf("store: write %s: %w", p, err)
		default:
			return f, false, nil
		}
		break
	}
	f, err = l.writeTemp(p, data, false)
	return f, true, err
}

var errNoLink = errors.New("store: no hard links here")

// folderRaced reports whether MkdirAll failed because a concurrent Delete
// removed a folder of the path while it was being made (a parent gone
// before its child was made, or a folder found existing and then gone):
// making the path again succeeds.
func folderRaced(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)
}

// intoFolder makes p's folder and runs put (a rename or link to p). A
// concurrent Delete removes folders it leaves empty, so a put that finds
// the folder gone makes it again, a few times.
func intoFolder(p string, put func() error) error {
	var err error
	for range 20 {
		if err = os.MkdirAll(filepath.Dir(p), 0o755); folderRaced(err) {
			continue
		} else if err != nil {
			return err
		}
		if err = put(); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// writeTemp writes data to a new temporary file in the staging folder (or
// beside p), synced, so that a crash never leaves a renamed or linked
// empty file.
func (l *Local) writeTemp(p string, data []byte, beside bool) (*os.File, error) {
	dir := filepath.Join(l.root, stageDir)
	if beside {
		dir = filepath.Dir(p)
	}
	var f *os.File
	var err error
	// A concurrent Delete may remove the (empty) directory between MkdirAll
	// and CreateTemp; try again a few times.
	for range 20 {
		if err = os.MkdirAll(dir, 0o755); folderRaced(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("store: write %s: %w", p, err)
		}
		if f, err = os.CreateTemp(dir, tempPattern); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: write %s: %w", p, err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("store: write %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f, nil
}

// written returns the properties of the blob just written from f.
func (l *Local) written(container, name, p string, f *os.File, data []byte) (Properties, error) {
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return Properties{}, fmt.Errorf("store: write %s: %w", p, err)
	}
	return l.propsOfData(container, name, p, fi, data), nil
}

// Append adds data to the end of the blob, creating it if absent, like an
// Azure append blob. It exists for tests that simulate Log Analytics data
// export; it is not part of Store.
func (l *Local) Append(ctx context.Context, container, name string, data []byte) (Properties, error) {
	if err := ctx.Err(); err != nil {
		return Properties{}, err
	}
	p, err := l.path(container, name)
	if err != nil {
		return Properties{}, err
	}
	if _, err := l.containerDir(container); err != nil {
		return Properties{}, fmt.Errorf("store: append %s: %w", p, err)
	}
	unlock, err := l.lock(container, name)
	if err != nil {
		return Properties{}, err
	}
	defer unlock()
	old, err := os.ReadFile(p)
	if err != nil && !notExist(err) {
		return Properties{}, fmt.Errorf("store: append: %w", err)
	}
	// Copy and rename rather than append in place, so that a reader pinned
	// to the old ETag never sees the new bytes.
	return l.replace(container, name, p, append(old, data...))
}

// Delete removes the blob under cond; ErrNotExist if absent.
func (l *Local) Delete(ctx context.Context, container, name string, cond Condition) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(container, name)
	if err != nil {
		return err
	}
	dir, err := l.containerDir(container)
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", p, err)
	}
	unlock, err := l.lock(container, name)
	if err != nil {
		return err
	}
	defer unlock()
	cur, exists, err := l.current(container, name, p)
	if err != nil && !errors.Is(err, errFolder) {
		return err
	}
	if !exists {
		return fmt.Errorf("store: delete %s: %w", p, ErrNotExist)
	}
	if err := checkCondition(cond, exists, cur.ETag); err != nil {
		return fmt.Errorf("store: delete %s (etag %s, if-match %q, if-none-match %q): %w", p, cur.ETag, cond.IfMatch, cond.IfNoneMatch, err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	// Remove the folders the blob leaves empty, as they do not exist in Azure
	// and would block a later blob named like one of them. os.Remove refuses
	// non-empty folders, which ends the walk.
	for d := filepath.Dir(p); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List calls fn for each blob whose name starts with prefix, in name order.
func (l *Local) List(ctx context.Context, container, prefix string, fn func(Properties) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := l.containerDir(container)
	if err != nil {
		return fmt.Errorf("store: list: %w", err)
	}
	// Walk only the deepest folder the prefix names.
	start := dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if CheckName(prefix[:i]) != nil {
			return nil // no blob can have this prefix
		}
		start = filepath.Join(dir, filepath.FromSlash(prefix[:i]))
	}
	var names []string
	if err := walkFiles(start, filepath.ToSlash(strings.TrimPrefix(start, dir)), 0, func(name string) {
		name = strings.TrimPrefix(name, "/")
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}); err != nil {
		return fmt.Errorf("store: list %s: %w", dir, err)
	}
	// Folder order is not name order ("a-b" < "a/b"), so sort the full names.
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, fi, err := l.open("list", container, name)
		if errors.Is(err, ErrNotExist) {
			continue // deleted since the walk
		}
		if err != nil {
			return err
		}
		pr, err := l.props(container, name, f, fi)
		f.Close()
		if err != nil {
			return err
		}
		if err := fn(pr); err != nil {
			return err
		}
	}
	return nil
}

// walkFiles calls add with the '/'-joined name of each regular file under
// dir, following symlinks (to a bounded depth, against loops) and skipping
// the store's own temporary and lock files.
func walkFiles(dir, name string, depth int, add func(string)) error {
	if depth > 64 {
		return fmt.Errorf("%s: folders nested too deep (a symlink loop?)", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), reservedPrefix) {
			continue
		}
		full, child := filepath.Join(dir, e.Name()), name+"/"+e.Name()
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			fi, err := os.Stat(full)
			if err != nil {
				continue // dangling link
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			if err := walkFiles(full, child, depth+1, add); err != nil {
				return err
			}
		case mode.IsRegular():
			add(child)
		}
	}
	return nil
}

// EnsureContainer creates the container's directory if absent.
func (l *Local) EnsureContainer(ctx context.Context, container string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckContainer(container); err != nil {
		return err
	}
	dir := filepath.Join(l.root, container)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: create container: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("store: create container %s: a file of that name is in the way", dir)
	}
	return nil
}

// lock takes the blob's lock: in-process first, so goroutines queue on a
// mutex rather than each blocking a thread in flock, then across processes.
func (l *Local) lock(container, name string) (func(), error) {
	sum := sha256.Sum256([]byte(container + "/" + name))
	key := hex.EncodeToString(sum[:16])
	unlockMu := l.locks.lock(key)
	dir := filepath.Join(l.root, lockDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		unlockMu()
		return nil, fmt.Errorf("store: lock %s/%s: %w", container, name, err)
	}
	unlockFile, err := lockFile(filepath.Join(dir, key+".lock"))
	if err != nil {
		unlockMu()
		return nil, fmt.Errorf("store: lock %s/%s: %w", container, name, err)
	}
	return func() { unlockFile(); unlockMu() }, nil
}

// keyedMutex is one mutex per key, kept only while in use.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*refMutex)
	}
	m := k.m[key]
	if m == nil {
		m = &refMutex{}
		k.m[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// etagCache maps a file version to its content ETag.
type etagCache struct {
	mu sync.Mutex
	m  map[fileKey]string
}

const etagCacheMax = 1 << 14

func (c *etagCache) get(k fileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, ok
}

func (c *etagCache) put(k fileKey, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= etagCacheMax {
		c.m = make(map[fileKey]string) // crude bound: start over
	}
	c.m[k] = etag
}
