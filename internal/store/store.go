// Package store is blob storage as tokenpivot uses it: Azure Blob Storage and
// a local directory behind one interface with the same semantics.
package store

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

var (
	// ErrNotExist means the blob (or container) is not there.
	ErrNotExist = fs.ErrNotExist
	// ErrConditionNotMet means an If-Match / If-None-Match condition failed:
	// the blob exists (If-None-Match: *) or its ETag changed (If-Match).
	ErrConditionNotMet = errors.New("store: condition not met")
)

// Properties describe one blob.
type Properties struct {
	Container    string
	Name         string
	Size         int64
	ETag         string
	LastModified time.Time
	// Sealed says the blob is complete as written and never grows by
	// appends (an Azure block blob). Append blobs and local files are not
	// sealed: a plain JSON Lines reader stops at their last complete line.
	Sealed bool
}

// Condition guards a Write or Delete. The zero value writes unconditionally.
type Condition struct {
	IfMatch     string // write only if the blob's ETag equals this
	IfNoneMatch string // "*": write only if the blob does not exist
}

// Store is blob storage. Container names are Azure container names; blob
// names may contain '/' and '='.
type Store interface {
	// Stat returns the blob's properties, or ErrNotExist.
	Stat(ctx context.Context, container, name string) (Properties, error)
	// ReadAt fills p from offset off of the blob (a ranged read). If etag is
	// not "", the read fails with ErrConditionNotMet when the blob changed.
	// It returns io.EOF as io.ReaderAt does when fewer than len(p) bytes remain.
	ReadAt(ctx context.Context, container, name string, p []byte, off int64, etag string) (int, error)
	// Read returns the whole blob and its properties, or ErrNotExist.
	Read(ctx context.Context, container, name string) ([]byte, Properties, error)
	// Write stores data as the blob under cond and returns its new properties;
	// ErrConditionNotMet when cond fails.
	Write(ctx context.Context, container, name string, data []byte, cond Condition) (Properties, error)
	// Delete removes the blob under cond; ErrNotExist if absent.
	Delete(ctx context.Context, container, name string, cond Condition) error
	// List calls fn for each blob whose name starts with prefix, in name order.
	List(ctx context.Context, container, prefix string, fn func(Properties) error) error
	// EnsureContainer creates the container if absent.
	EnsureContainer(ctx context.Context, container string) error
	// URL returns the blob's URL (Azure) or file path (local), for events and logs.
	URL(container, name string) string
	// ServiceURL is the blob service URL that events name this store's
	// blobs by, "" for a local directory (which raises no events).
	ServiceURL() string
}
