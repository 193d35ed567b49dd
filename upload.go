package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// runUpload copies a folder laid out like a storage account (what gen
// writes: one folder per container) into an account, for running the
// function locally against Azurite without any other tool.
func runUpload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("upload", stderr, "--storage URL|CONNECTION-STRING [--work FILE] DIR")
	sf := settings.Register(fs, settings.StorageAccountURL, settings.StorageConnectionString)
	work := fs.String("work", "", "also write to this `file` one ProcessExport request per blob uploaded (the body the Functions host would post for its queue message)")
	dirs, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(dirs) != 1 {
		return usagef("name one folder to upload (laid out like the account: DIR/<container>/<blob name>)")
	}
	s, err := sf.Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	if s.Storage() == "" {
		return usagef("no storage: give --storage (for Azurite: --storage UseDevelopmentStorage=true)")
	}
	if err := checkLocal(dirs[0], "folder"); err != nil {
		return err
	}
	dst, err := store.Open(ctx, s.Storage())
	if err != nil {
		return usageError{fmt.Errorf("--storage: %w", err)}
	}
	blobs, skipped, err := accountFiles(dirs[0])
	if err != nil {
		return err
	}
	if len(blobs) == 0 {
		return usagef("%s: no files under a container folder (DIR/<container>/...)", dirs[0])
	}
	var wf *bufio.Writer
	if *work != "" {
		f, err := os.Create(*work)
		if err != nil {
			return usagef("--work: %v", err)
		}
		defer f.Close()
		wf = bufio.NewWriter(f)
	}
	ensured := map[string]bool{}
	var bytes int64
	bar := newProgress(stderr, "uploading", totalBlobSize(blobs))
	for _, b := range blobs {
		if !ensured[b.container] {
			if err := dst.EnsureContainer(ctx, b.container); err != nil {
				return err
			}
			ensured[b.container] = true
		}
		data, err := os.ReadFile(b.path)
		if err != nil {
			return err
		}
		if _, err := dst.Write(ctx, b.container, b.name, data, store.Condition{}); err != nil {
			return err
		}
		bytes += int64(len(data))
		bar.Add(int64(len(data)))
		if wf != nil {
			if err := writeWorkRequest(wf, pipeline.Work{Container: b.container, Name: b.name}); err != nil {
				return err
			}
		}
	}
	bar.Finish()
	if wf != nil {
		if err := wf.Flush(); err != nil {
			return err
		}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d tokenpivot-* state folders (not exports)\n", skipped)
	}
	fmt.Fprintf(stdout, "uploaded %d blobs (%d bytes) in %d containers to %s\n", len(blobs), bytes, len(ensured), dst.ServiceURL())
	if *work != "" {
		fmt.Fprintf(stdout, "wrote %d ProcessExport requests to %s\n", len(blobs), *work)
	}
	return nil
}

// writeWorkRequest writes the custom-handler request the Functions host
// sends to ProcessExport for one queue message (the message, a JSON string
// of the blob's container and name, as OnExportCreated queues it).
func writeWorkRequest(w io.Writer, wk pipeline.Work) error {
	msg, err := json.Marshal(wk)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"Data": map[string]string{"work": string(msg)}, "Metadata": map[string]any{}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", body)
	return err
}

// accountBlob is a file of a folder laid out like an account.
type accountBlob struct {
	exportFile
	container, name string
}

// accountFiles lists dir's files as blobs: the first folder is the
// container, the rest of the path the blob name. Folders that are not
// valid container names, files directly in dir and tokenpivot's own
// state folders are left out (the last are counted).
func accountFiles(dir string) (blobs []accountBlob, skippedState int, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	for _, e := range entries {
		c := e.Name()
		if !e.IsDir() || store.CheckContainer(c) != nil {
			continue
		}
		if strings.HasPrefix(c, "tokenpivot-") {
			skippedState++
			continue
		}
		root := filepath.Join(dir, c)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			blobs = append(blobs, accountBlob{exportFile{p, info.Size()}, c, filepath.ToSlash(rel)})
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	slices.SortFunc(blobs, func(a, b accountBlob) int { return strings.Compare(a.path, b.path) })
	return blobs, skippedState, nil
}

func totalBlobSize(bs []accountBlob) int64 {
	var n int64
	for _, b := range bs {
		n += b.size
	}
	return n
}
