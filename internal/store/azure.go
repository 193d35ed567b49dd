package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	azcontainer "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// Azure is a Store in an Azure Blob Storage account (or Azurite), using the
// azblob SDK's clients directly. Conditions map to the service's own
// If-Match / If-None-Match, so they hold across all writers of the account.
type Azure struct {
	svc        *service.Client
	serviceURL string // without trailing slash or query (a SAS is a secret)
}

var _ Store = (*Azure)(nil)

// azuriteKey is Azurite's well-known development account key (public).
const azuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// AzuriteConnectionString is what "UseDevelopmentStorage=true" stands for:
// Azurite's blob endpoint on its default port.
const AzuriteConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + azuriteKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"

// NewAzureFromConnectionString returns a Store for a storage connection
// string (account key or SAS; meant for Azurite and development).
// "UseDevelopmentStorage=true" means Azurite on 127.0.0.1:10000.
func NewAzureFromConnectionString(cs string) (*Azure, error) {
	if strings.Contains(strings.ReplaceAll(cs, " ", ""), "UseDevelopmentStorage=true") {
		cs = AzuriteConnectionString
	}
	svc, err := service.NewClientFromConnectionString(cs, clientOptions())
	if err != nil {
		// The SDK's message never contains the key; ours must not either.
		return nil, fmt.Errorf("store: storage connection string: %w", err)
	}
	return newAzure(svc)
}

// NewAzure returns a Store for the account at accountURL
// (https://ACCOUNT.blob.core.windows.net) authenticated by cred, usually
// azidentity.NewDefaultAzureCredential.
func NewAzure(accountURL string, cred azcore.TokenCredential) (*Azure, error) {
	u, err := url.Parse(accountURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("store: account URL %q: want https://ACCOUNT.blob.core.windows.net", accountURL)
	}
	svc, err := service.NewClient(accountURL, cred, clientOptions())
	if err != nil {
		return nil, fmt.Errorf("store: account URL %s: %w", accountURL, err)
	}
	return newAzure(svc)
}

// httpClient is shared by every Azure store of the process: requests in
// flight at once (alert writes run 32 at a time per blob, and blobs run in
// parallel) each need a connection, and the SDK's default transport keeps
// only 10 idle per host, so the others would be closed and opened again,
// a TCP and TLS handshake each, at the latency parallelism is meant to hide.
var httpClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}
}()

func clientOptions() *service.ClientOptions {
	return &service.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient}}
}

func newAzure(svc *service.Client) (*Azure, error) {
	u, err := url.Parse(svc.URL())
	if err != nil {
		return nil, fmt.Errorf("store: service URL: %w", err)
	}
	u.RawQuery, u.Fragment = "", ""
	return &Azure{svc: svc, serviceURL: strings.TrimRight(u.String(), "/")}, nil
}

// ServiceURL returns the blob service URL without a trailing slash or SAS,
// e.g. https://acct.blob.core.windows.net or, for Azurite (path-style),
// http://127.0.0.1:10000/devstoreaccount1.
func (a *Azure) ServiceURL() string { return a.serviceURL }

// URL returns the blob's URL, its name escaped segment by segment as Event
// Grid writes it (slashes kept).
func (a *Azure) URL(container, name string) string {
	return a.serviceURL + "/" + container + "/" + escapeName(name)
}

func (a *Azure) check(container, name string) error {
	if err := CheckContainer(container); err != nil {
		return err
	}
	return CheckName(name)
}

func (a *Azure) blob(container, name string) *blob.Client {
	return a.svc.NewContainerClient(container).NewBlobClient(name)
}

// fail maps the service's answer to the package's sentinel errors, naming
// the blob; other errors keep the SDK's (long, but complete) message.
func (a *Azure) fail(op, container, name string, err error) error {
	where := a.serviceURL + "/" + container
	if name != "" {
		where = a.URL(container, name)
	}
	var re *azcore.ResponseError
	status, code := 0, ""
	if errors.As(err, &re) {
		status, code = re.StatusCode, re.ErrorCode
	}
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound),
		status == http.StatusNotFound:
		return fmt.Errorf("store: %s %s: %s: %w", op, where, code, ErrNotExist)
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists),
		status == http.StatusPreconditionFailed:
		return fmt.Errorf("store: %s %s: %s: %w", op, where, code, ErrConditionNotMet)
	}
	return fmt.Errorf("store: %s %s: %w", op, where, err)
}

func accessConditions(cond Condition) *blob.AccessConditions {
	if cond == (Condition{}) {
		return nil
	}
	m := &blob.ModifiedAccessConditions{}
	if cond.IfMatch != "" {
		m.IfMatch = to.Ptr(azcore.ETag(cond.IfMatch))
	}
	if cond.IfNoneMatch != "" {
		m.IfNoneMatch = to.Ptr(azcore.ETag(cond.IfNoneMatch))
	}
	return &blob.AccessConditions{ModifiedAccessConditions: m}
}

func props(container, name string, size *int64, etag *azcore.ETag, lm *time.Time) Properties {
	p := Properties{Container: container, Name: name}
	if size != nil {
		p.Size = *size
	}
	if etag != nil {
		p.ETag = string(*etag)
		// Listings give ETags bare (0x8D...), headers quoted ("0x8D..."):
		// one form, so ETags from List and Stat compare equal.
		if !strings.HasPrefix(p.ETag, `"`) {
			p.ETag = `"` + p.ETag + `"`
		}
	}
	if lm != nil {
		p.LastModified = lm.UTC()
	}
	return p
}

// Stat returns the blob's properties (for an append blob, its current
// length), or ErrNotExist.
func (a *Azure) Stat(ctx context.Context, container, name string) (Properties, error) {
	if err := a.check(container, name); err != nil {
		return Properties{}, err
	}
	r, err := a.blob(container, name).GetProperties(ctx, nil)
	if err != nil {
		return Properties{}, a.fail("stat", container, name, err)
	}
	pr := props(container, name, r.ContentLength, r.ETag, r.LastModified)
	pr.Sealed = r.BlobType != nil && *r.BlobType == blob.BlobTypeBlockBlob
	return pr, nil
}

// ReadAt reads len(p) bytes at off with one ranged GET (If-Match etag when
// etag is set). Reading at or after the end returns 0, io.EOF.
func (a *Azure) ReadAt(ctx context.Context, container, name string, p []byte, off int64, etag string) (int, error) {
	if err := a.check(container, name); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("store: read %s: negative offset %d", a.URL(container, name), off)
	}
	if len(p) == 0 {
		// A zero Count means "to the end" to the service; check existence
		// and version only.
		pr, err := a.Stat(ctx, container, name)
		if err == nil && etag != "" && pr.ETag != etag {
			err = fmt.Errorf("store: read %s: etag %s, want %s: %w", a.URL(container, name), pr.ETag, etag, ErrConditionNotMet)
		}
		return 0, err
	}
	r, err := a.blob(container, name).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: off, Count: int64(len(p))},
		AccessConditions: accessConditions(Condition{IfMatch: etag}),
	})
	if err != nil {
		var re *azcore.ResponseError
		if bloberror.HasCode(err, bloberror.InvalidRange) ||
			(errors.As(err, &re) && re.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
			return 0, io.EOF // off is at or past the end
		}
		return 0, a.fail("read", container, name, err)
	}
	body := r.NewRetryReader(ctx, nil)
	defer body.Close()
	want := len(p)
	if r.ContentLength != nil && *r.ContentLength < int64(want) {
		want = int(*r.ContentLength)
	}
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		return n, fmt.Errorf("store: read %s at %d: %w", a.URL(container, name), off, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read returns the whole blob and its properties, or ErrNotExist.
func (a *Azure) Read(ctx context.Context, container, name string) ([]byte, Properties, error) {
	if err := a.check(container, name); err != nil {
		return nil, Properties{}, err
	}
	r, err := a.blob(container, name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, Properties{}, a.fail("read", container, name, err)
	}
	body := r.NewRetryReader(ctx, nil)
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, Properties{}, fmt.Errorf("store: read %s: %w", a.URL(container, name), err)
	}
	pr := props(container, name, nil, r.ETag, r.LastModified)
	pr.Size = int64(len(data))
	pr.Sealed = r.BlobType != nil && *r.BlobType == blob.BlobTypeBlockBlob
	if r.ContentLength != nil && *r.ContentLength != pr.Size {
		return nil, Properties{}, fmt.Errorf("store: read %s: got %d bytes, want %d", a.URL(container, name), pr.Size, *r.ContentLength)
	}
	return data, pr, nil
}

// Write stores data as a block blob under cond (one Put Blob up to 256 MiB).
func (a *Azure) Write(ctx context.Context, container, name string, data []byte, cond Condition) (Properties, error) {
	if err := a.check(container, name); err != nil {
		return Properties{}, err
	}
	bb := a.svc.NewContainerClient(container).NewBlockBlobClient(name)
	r, err := bb.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{AccessConditions: accessConditions(cond)})
	if err != nil {
		return Properties{}, a.fail("write", container, name, err)
	}
	size := int64(len(data))
	pr := props(container, name, &size, r.ETag, r.LastModified)
	pr.Sealed = true
	return pr, nil
}

// maxAppendBlock is the largest block every service version accepts.
const maxAppendBlock = 4 << 20

// Append adds data to the append blob, creating it if absent. Tests use it
// to simulate Log Analytics data export; it is not part of Store.
func (a *Azure) Append(ctx context.Context, container, name string, data []byte) (Properties, error) {
	if err := a.check(container, name); err != nil {
		return Properties{}, err
	}
	ab := a.svc.NewContainerClient(container).NewAppendBlobClient(name)
	_, err := ab.Create(ctx, &appendblob.CreateOptions{AccessConditions: accessConditions(Condition{IfNoneMatch: "*"})})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return Properties{}, a.fail("append", container, name, err)
	}
	for len(data) > 0 {
		chunk := data[:min(len(data), maxAppendBlock)]
		data = data[len(chunk):]
		if _, err := ab.AppendBlock(ctx, streaming.NopCloser(bytes.NewReader(chunk)), nil); err != nil {
			return Properties{}, a.fail("append", container, name, err)
		}
	}
	return a.Stat(ctx, container, name)
}

// Delete removes the blob (and its snapshots) under cond; ErrNotExist if absent.
func (a *Azure) Delete(ctx context.Context, container, name string, cond Condition) error {
	if err := a.check(container, name); err != nil {
		return err
	}
	_, err := a.blob(container, name).Delete(ctx, &blob.DeleteOptions{
		DeleteSnapshots:  to.Ptr(blob.DeleteSnapshotsOptionTypeInclude),
		AccessConditions: accessConditions(cond),
	})
	if err != nil {
		return a.fail("delete", container, name, err)
	}
	return nil
}

// List calls fn for each blob whose name starts with prefix, in name order
// (the service lists flat listings in name order).
func (a *Azure) List(ctx context.Context, container, prefix string, fn func(Properties) error) error {
	if err := CheckContainer(container); err != nil {
		return err
	}
	opts := &azcontainer.ListBlobsFlatOptions{}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	pager := a.svc.NewContainerClient(container).NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return a.fail("list", container, "", err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || it.Properties == nil {
				continue
			}
			pr := props(container, *it.Name, it.Properties.ContentLength, it.Properties.ETag, it.Properties.LastModified)
			pr.Sealed = it.Properties.BlobType != nil && *it.Properties.BlobType == blob.BlobTypeBlockBlob
			if err := fn(pr); err != nil {
				return err
			}
		}
	}
	return nil
}

// EnsureContainer creates the container if absent.
func (a *Azure) EnsureContainer(ctx context.Context, container string) error {
	if err := CheckContainer(container); err != nil {
		return err
	}
	_, err := a.svc.NewContainerClient(container).Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return a.fail("create container", container, "", err)
	}
	return nil
}
