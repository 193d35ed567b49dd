package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// Staged is a blob being written a part at a time, so that a large blob
// (an extract of a multi-GB export) is never held in memory: Write adds
// content, Commit makes what was written the blob's content under cond, as
// Store.Write would, and Abort drops it. Nothing is visible before Commit.
// After Commit or Abort the Staged is spent; Abort after Commit is a no-op,
// so callers can defer it.
type Staged interface {
	io.Writer
	// Commit makes the content the blob's under cond; ErrConditionNotMet
	// when cond fails (the staged content is then dropped).
	Commit(ctx context.Context, cond Condition) (Properties, error)
	// Abort drops the staged content.
	Abort()
}

// Stager is a Store that can take a blob's content as a stream. Local and
// Azure are Stagers; Stage falls back to memory for other Stores.
type Stager interface {
	// Stage starts a new content for the blob. Nothing is written to the
	// blob until Commit.
	Stage(ctx context.Context, container, name string) (Staged, error)
}

// Stage starts a streamed write of the blob: through s's own Stage when s
// is a Stager (a temporary file locally, staged blocks on Azure), else
// buffered in memory and written with one Write on Commit (wrappers of a
// Store, as tests use, keep seeing every write).
func Stage(ctx context.Context, s Store, container, name string) (Staged, error) {
	if st, ok := s.(Stager); ok {
		return st.Stage(ctx, container, name)
	}
	return &bufferedStage{s: s, container: container, name: name}, nil
}

// bufferedStage is Stage's fallback: the content in memory.
type bufferedStage struct {
	s               Store
	container, name string
	buf             bytes.Buffer
}

func (b *bufferedStage) Write(p []byte) (int, error) { return b.buf.Write(p) }

func (b *bufferedStage) Commit(ctx context.Context, cond Condition) (Properties, error) {
	data := b.buf.Bytes()
	b.buf = bytes.Buffer{}
	return b.s.Write(ctx, b.container, b.name, data, cond)
}

func (b *bufferedStage) Abort() { b.buf = bytes.Buffer{} }

var _ Stager = (*Local)(nil)

// Stage writes the content to a temporary file in the staging folder,
// hashing it on the way for the ETag; Commit links it into place (or, for
// a conditional replace, renames it under the blob's lock).
func (l *Local) Stage(ctx context.Context, container, name string) (Staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := l.path(container, name)
	if err != nil {
		return nil, err
	}
	if _, err := l.containerDir(container); err != nil {
		return nil, fmt.Errorf("store: write %s: %w", p, err)
	}
	f, err := l.writeTemp(p, nil, false)
	if err != nil {
		return nil, err
	}
	ls := &localStage{l: l, container: container, name: name, p: p, f: f, sum: sha256.New()}
	ls.w = bufio.NewWriterSize(io.MultiWriter(f, ls.sum), 256<<10)
	return ls, nil
}

type localStage struct {
	l               *Local
	container, name string
	p               string // the blob's path
	f               *os.File
	w               *bufio.Writer
	sum             hash.Hash
	size            int64
	err             error // the first write error, returned again
}

func (s *localStage) Write(b []byte) (int, error) {
	if s.f == nil {
		return 0, errors.New("store: write to a committed or aborted stage")
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(b)
	s.size += int64(n)
	if err != nil {
		s.err = fmt.Errorf("store: write %s: %w", s.p, err)
	}
	return n, s.err
}

func (s *localStage) Abort() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

func (s *localStage) Commit(ctx context.Context, cond Condition) (Properties, error) {
	if s.f == nil {
		return Properties{}, errors.New("store: commit of a committed or aborted stage")
	}
	defer s.Abort()
	if err := ctx.Err(); err != nil {
		return Properties{}, err
	}
	if s.err != nil {
		return Properties{}, s.err
	}
	fail := func(err error) (Properties, error) { return Properties{}, fmt.Errorf("store: write %s: %w", s.p, err) }
	if err := s.w.Flush(); err != nil {
		return fail(err)
	}
	// Synced before it is named, so a crash never leaves a named empty file.
	if err := s.f.Sync(); err != nil {
		return fail(err)
	}
	etag := etagOf(s.sum.Sum(nil))
	if cond.IfNoneMatch == "*" && cond.IfMatch == "" {
		// link(2) fails if the name exists: create-if-absent without the lock.
		err := intoFolder(s.p, func() error { return os.Link(s.f.Name(), s.p) })
		switch {
		case err == nil:
			return s.props(etag)
		case errors.Is(err, fs.ErrExist):
			if fi, serr := os.Lstat(s.p); serr == nil && fi.IsDir() {
				return Properties{}, fmt.Errorf("store: %s: is a folder of other blobs; a local store cannot also hold a blob of that name: %w", s.p, errFolder)
			}
			return Properties{}, fmt.Errorf("store: write %s (if-none-match *): %w", s.p, ErrConditionNotMet)
		}
		// No hard links here: the locked path below.
	}
	unlock, err := s.l.lock(s.container, s.name)
	if err != nil {
		return Properties{}, err
	}
	defer unlock()
	cur, exists, err := s.l.current(s.container, s.name, s.p)
	if err != nil {
		return Properties{}, err
	}
	if err := checkCondition(cond, exists, cur.ETag); err != nil {
		return Properties{}, fmt.Errorf("store: write %s (etag %s, if-match %q, if-none-match %q): %w", s.p, cur.ETag, cond.IfMatch, cond.IfNoneMatch, err)
	}
	err = intoFolder(s.p, func() error { return os.Rename(s.f.Name(), s.p) })
	if errors.Is(err, syscall.EXDEV) {
		// A container folder on another file system: copy beside the blob.
		err = s.copyBeside()
	}
	if err != nil {
		return fail(err)
	}
	return s.props(etag)
}

// copyBeside copies the staged file to a temporary file beside the blob
// and renames that over it.
func (s *localStage) copyBeside() error {
	t, err := os.CreateTemp(filepath.Dir(s.p), tempPattern)
	if err != nil {
		return err
	}
	_, err = io.Copy(t, io.NewSectionReader(s.f, 0, s.size))
	if err == nil {
		err = t.Chmod(0o644)
	}
	if err == nil {
		err = t.Sync()
	}
	t.Close()
	if err == nil {
		err = os.Rename(t.Name(), s.p)
	}
	if err != nil {
		os.Remove(t.Name())
	}
	return err
}

// props returns the committed blob's properties (and caches its ETag).
func (s *localStage) props(etag string) (Properties, error) {
	fi, err := os.Stat(s.p)
	if err != nil {
		return Properties{}, fmt.Errorf("store: write %s: %w", s.p, err)
	}
	if key, ok := fileKeyOf(s.p, fi); ok {
		s.l.etags.put(key, etag)
	}
	return Properties{Container: s.container, Name: s.name, Size: s.size, ETag: etag, LastModified: fi.ModTime().UTC()}, nil
}

var _ Stager = (*Azure)(nil)

// stageBlockSize is the size of the blocks an Azure stage uploads: what
// it holds in memory, and few requests for a large blob (a 200 MB extract
// is 50 Put Block calls). A blob smaller than one block is one Put Blob.
const stageBlockSize = 4 << 20

// Stage uploads the content as the blocks of a block blob (Put Block) as
// it fills them; Commit commits the block list under cond (Put Block
// List), so the blob changes at once. Blocks staged but never committed
// (an Abort, a crash) are discarded by the service after a week and never
// seen. A content smaller than one block is one Put Blob on Commit.
func (a *Azure) Stage(ctx context.Context, container, name string) (Staged, error) {
	if err := a.check(container, name); err != nil {
		return nil, err
	}
	// Block ids are unique to this stage: another writer staging the same
	// blob at the same time cannot overwrite its blocks.
	var id [16]byte
	if _, err := rand.Read(id[:8]); err != nil {
		return nil, err
	}
	return &azureStage{ctx: ctx, a: a, container: container, name: name,
		bb: a.svc.NewContainerClient(container).NewBlockBlobClient(name), prefix: id}, nil
}

type azureStage struct {
	ctx             context.Context
	a               *Azure
	container, name string
	bb              *blockblob.Client
	prefix          [16]byte // random first 8 bytes, block index in the last 8
	buf             []byte
	ids             []string
	size            int64
	err             error
	done            bool
}

func (s *azureStage) Write(p []byte) (int, error) {
	if s.done {
		return 0, errors.New("store: write to a committed or aborted stage")
	}
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	for len(p) > 0 {
		if s.buf == nil {
			s.buf = make([]byte, 0, stageBlockSize)
		}
		k := min(len(p), stageBlockSize-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) == stageBlockSize {
			if err := s.putBlock(); err != nil {
				return n - len(p), err
			}
		}
	}
	s.size += int64(n)
	return n, nil
}

// putBlock uploads the buffer as the next block.
func (s *azureStage) putBlock() error {
	id := s.prefix
	binary.BigEndian.PutUint64(id[8:], uint64(len(s.ids)))
	bid := base64.StdEncoding.EncodeToString(id[:])
	_, err := s.bb.StageBlock(s.ctx, bid, streaming.NopCloser(bytes.NewReader(s.buf)), nil)
	if err != nil {
		s.err = s.a.fail("write", s.container, s.name, err)
		return s.err
	}
	s.ids = append(s.ids, bid)
	s.buf = s.buf[:0]
	return nil
}

func (s *azureStage) Abort() { s.done, s.buf = true, nil }

func (s *azureStage) Commit(ctx context.Context, cond Condition) (Properties, error) {
	if s.done {
		return Properties{}, errors.New("store: commit of a committed or aborted stage")
	}
	defer s.Abort()
	if s.err != nil {
		return Properties{}, s.err
	}
	if len(s.ids) == 0 {
		// Small: one Put Blob.
		return s.a.Write(ctx, s.container, s.name, s.buf, cond)
	}
	if len(s.buf) > 0 {
		if err := s.putBlock(); err != nil {
			return Properties{}, err
		}
	}
	r, err := s.bb.CommitBlockList(ctx, s.ids, &blockblob.CommitBlockListOptions{AccessConditions: accessConditions(cond)})
	if err != nil {
		return Properties{}, s.a.fail("write", s.container, s.name, err)
	}
	pr := props(s.container, s.name, &s.size, r.ETag, r.LastModified)
	pr.Sealed = true
	return pr, nil
}
