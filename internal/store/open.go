package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Open returns the Store a command-line or settings value names:
//
//   - a storage connection string (it contains "AccountName=",
//     "BlobEndpoint=" or "UseDevelopmentStorage=true"): Azurite or a dev
//     account, e.g. the value of TOKENPIVOT_STORAGE_CONNECTION_STRING;
//   - https://ACCOUNT.blob.core.windows.net: Azure Blob Storage with
//     azidentity.NewDefaultAzureCredential (managed identity, az login, env);
//   - file:///abs/dir or a directory path: a Local store; the directory
//     must exist.
//
// Plain http:// URLs are refused: Azurite needs its key, so pass its
// connection string instead. ctx is unused today and kept for credential
// checks that may need it.
func Open(ctx context.Context, spec string) (Store, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, fmt.Errorf("store: no storage given: want a directory, an https://ACCOUNT.blob.core.windows.net URL or a connection string")
	case isConnectionString(spec):
		return NewAzureFromConnectionString(spec)
	case strings.HasPrefix(spec, "https://"):
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("store: storage URL %q: want https://ACCOUNT.blob.core.windows.net", spec)
		}
		if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("store: storage URL %s: want the account's blob service URL, without a container, path or SAS", u.Redacted())
		}
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("store: Azure credential for %s: %w", spec, err)
		}
		return NewAzure(spec, cred)
	case strings.HasPrefix(spec, "http://"):
		return nil, fmt.Errorf("store: storage URL %q: plain http is only for Azurite; pass its connection string (or UseDevelopmentStorage=true)", spec)
	case strings.HasPrefix(spec, "file://"):
		u, err := url.Parse(spec)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return nil, fmt.Errorf("store: storage URL %q: want file:///absolute/dir", spec)
		}
		return NewLocal(u.Path)
	}
	return NewLocal(spec)
}

func isConnectionString(s string) bool {
	for _, k := range []string{"AccountName=", "BlobEndpoint=", "UseDevelopmentStorage=true"} {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}
