package signin

import (
	"path"
	"strings"
)

// exportExts are the name endings of export files. The format itself is
// detected from the content; the name only tells exports from the other
// files that share their folders (README.txt, _SUCCESS, .crc checksums).
var exportExts = []string{".parquet", ".json", ".jsonl", ".ndjson", ".gz"}

// IsExportName reports whether a file or blob name may hold an export:
// it ends in .parquet, .json, .jsonl, .ndjson or .gz, and its base name
// does not start with '_' or '.' (markers and hidden files, as Spark and
// Hadoop write them). detect, process and the function apply the same rule.
func IsExportName(name string) bool {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	if base == "" || base[0] == '_' || base[0] == '.' {
		return false
	}
	lower := strings.ToLower(base)
	for _, ext := range exportExts {
		if strings.HasSuffix(lower, ext) && len(lower) > len(ext) {
			return true
		}
	}
	return false
}
