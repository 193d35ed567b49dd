// Command package builds the zip that an Azure Functions Flex Consumption app
// runs: host.json and one folder per function at the zip root, and the
// tokenpivot custom handler built for linux/amd64 without cgo, with its run bit.
//
//	go run ./tools/package -o dist/tokenpivot.zip
//
// It is a Go program rather than a shell script so that CI and a developer's
// machine build the same bytes, and so that its tests can check the result.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Executable is the handler's file name in the package; host.json's
// customHandler.description.defaultExecutablePath must name it.
const Executable = "tokenpivot"

// zipTime is the fixed modification time of every entry, so that the same
// inputs give the same zip.
var zipTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Options say what to package.
type Options struct {
	// Root holds host.json and functions/<Name>/function.json.
	Root string
	// Main is the package to build, relative to Root ("." is the module root).
	Main string
	// Out is the zip to write.
	Out string
}

func main() {
	opts := Options{}
	flag.StringVar(&opts.Root, "root", ".", "directory holding host.json and functions/")
	flag.StringVar(&opts.Main, "main", ".", "Go main package to build, relative to -root")
	flag.StringVar(&opts.Out, "o", "dist/tokenpivot.zip", "zip file to write")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "package: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	entries, err := Build(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", opts.Out, strings.Join(entries, ", "))
}

// Build compiles the handler and writes the package zip to opts.Out. It
// returns the zip's entry names in the order written.
func Build(opts Options) ([]string, error) {
	host, err := readHost(opts.Root)
	if err != nil {
		return nil, err
	}
	functions, err := readFunctions(opts.Root)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "tokenpivot-package-")
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, Executable)
	if err := compile(opts.Root, opts.Main, bin); err != nil {
		return nil, err
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}

	files := []file{{name: "host.json", data: host, mode: 0o644}}
	for _, f := range functions {
		files = append(files, file{name: f.name + "/function.json", data: f.data, mode: 0o644})
	}
	files = append(files, file{name: Executable, data: exe, mode: 0o755})
	if err := writeZip(opts.Out, files); err != nil {
		return nil, err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names, nil
}

type file struct {
	name string
	data []byte
	mode os.FileMode
}

// readHost reads host.json and checks that it starts our executable: a host
// that names another file would deploy fine and never run.
func readHost(root string) ([]byte, error) {
	path := filepath.Join(root, "host.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	var host struct {
		Version       string `json:"version"`
		CustomHandler *struct {
			Description struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(data, &host); err != nil {
		return nil, fmt.Errorf("package: %s: %w", path, err)
	}
	switch {
	case host.Version != "2.0":
		return nil, fmt.Errorf("package: %s: version is %q, want \"2.0\"", path, host.Version)
	case host.CustomHandler == nil:
		return nil, fmt.Errorf("package: %s: no customHandler section", path)
	case host.CustomHandler.Description.DefaultExecutablePath != Executable:
		return nil, fmt.Errorf("package: %s: customHandler.description.defaultExecutablePath is %q, want %q",
			path, host.CustomHandler.Description.DefaultExecutablePath, Executable)
	}
	return data, nil
}

type function struct {
	name string
	data []byte
}

// readFunctions reads functions/<Name>/function.json, sorted by name, and
// checks that each declares at least one binding with a type and a name.
func readFunctions(root string) ([]function, error) {
	paths, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("package: no functions/*/function.json under %s", root)
	}
	sort.Strings(paths)
	var out []function
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("package: %w", err)
		}
		var fn struct {
			Bindings []struct {
				Type      string `json:"type"`
				Direction string `json:"direction"`
				Name      string `json:"name"`
			} `json:"bindings"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&fn); err != nil {
			return nil, fmt.Errorf("package: %s: %w", path, err)
		}
		if len(fn.Bindings) == 0 {
			return nil, fmt.Errorf("package: %s: no bindings", path)
		}
		triggers := 0
		for i, b := range fn.Bindings {
			if b.Type == "" || b.Name == "" || (b.Direction != "in" && b.Direction != "out") {
				return nil, fmt.Errorf("package: %s: bindings[%d] needs type, name and direction in|out", path, i)
			}
			if strings.HasSuffix(b.Type, "Trigger") {
				triggers++
			}
		}
		if triggers != 1 {
			return nil, fmt.Errorf("package: %s: has %d triggers, want exactly 1", path, triggers)
		}
		out = append(out, function{name: filepath.Base(filepath.Dir(path)), data: data})
	}
	return out, nil
}

// compile builds the handler the way Flex Consumption runs it: Linux on
// amd64, statically linked (no cgo, so no glibc version to match).
func compile(root, mainPkg, out string) error {
	pkg := mainPkg
	if !strings.HasPrefix(pkg, ".") && !filepath.IsAbs(pkg) {
		pkg = "./" + pkg
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("package: go build %s (GOOS=linux GOARCH=amd64 CGO_ENABLED=0) in %s: %w\n%s",
			pkg, root, err, stderr.String())
	}
	return nil
}

// writeZip writes files to path through a temporary file, so that a failed
// run never leaves a half-written package where a deployment would pick it up.
func writeZip(path string, files []file) (err error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("package: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tokenpivot-*.zip")
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	zw := zip.NewWriter(f)
	for _, file := range files {
		hdr := &zip.FileHeader{Name: file.name, Method: zip.Deflate, Modified: zipTime}
		// SetMode records Unix permissions (creator = Unix), which is what
		// makes the extracted executable runnable on the Linux worker.
		hdr.SetMode(file.mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return fmt.Errorf("package: %s: %w", file.name, err)
		}
		if _, err := w.Write(file.data); err != nil {
			return fmt.Errorf("package: %s: %w", file.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	return nil
}
