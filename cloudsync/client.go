package cloudsync

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpproxy"

	"github.com/outpost-robotics/outpost/api/codec"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/signed"
)

// ClientOptions configures the connection to the fleet cloud.
type ClientOptions struct {
	// CloudURL is the cloud's base URL from the bootstrap file.
	CloudURL string
	// PartID and PartSecret authenticate the part; they travel only in the
	// Authorization header, never in a URL or a log line.
	PartID, PartSecret string
	// CAFile, when set, is a PEM bundle trusted for the cloud's TLS instead of
	// the system's roots (a private cloud).
	CAFile string
	// CAPEM, when set and CAFile is not, are the PEM certificates trusted
	// for the cloud's TLS instead of the system's (a bootstrap file's
	// ca_pem).
	CAPEM []byte
	// Logger receives retry and transport messages.
	Logger *zap.Logger
	// RetryMax is how many times one call is retried within a cycle; 0 means 4.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff; zero means
	// 500 ms and 5 s. A Retry-After from the cloud is honoured up to the max.
	RetryWaitMin, RetryWaitMax time.Duration
	// Compression names the request body compression: "zstd" (default),
	// "gzip" or "identity"; "none" also asks for uncompressed answers,
	// for package chunk downloads, so a chunk is never held both compressed
	// and decompressed. zstd won the measurement in docs/PERFORMANCE.md
	// (sync's BenchmarkCompression).
	Compression string
	// Getenv reads the proxy settings: HTTPS_PROXY, HTTP_PROXY and
	// NO_PROXY (or their lower-case forms, which win, as in Go's
	// golang.org/x/net/http/httpproxy). nil
	// means the process environment. They are read once, by NewClient, for
	// this client alone; see proxyFunc.
	Getenv func(string) string
}

// ErrCAFile marks NewClient's errors about ClientOptions.CAFile, which the
// daemon reports against the bootstrap file's field.
var ErrCAFile = errors.New("cloud CA file")

// MaxResponseBytes bounds any answer the part reads from the cloud, after
// decompression: the largest honest one is a pull carrying a config and a
// grant bundle of at most signed.MaxPayload each, so a broken or hostile
// cloud (or whatever answers in its place) cannot make a part hold more.
const MaxResponseBytes = 2*signed.MaxPayload + 1<<20

// NewClient returns the part's sync API client: connect-go over
// go-retryablehttp (with zap as its logger: the default one prints URLs to
// stderr), with keep-alive, HTTPS_PROXY support, an optional private CA and
// the part's credentials in a header.
func NewClient(opts ClientOptions) (syncv1connect.SyncServiceClient, error) {
	return newClient(opts, nil)
}

// newClient is NewClient with the transport's dialer replaced when dial is
// not nil: a test reaches a cloud by a name no DNS knows that way.
func newClient(opts ClientOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (syncv1connect.SyncServiceClient, error) {
	if err := partfile.CheckCloudURL(opts.CloudURL); err != nil {
		return nil, fmt.Errorf("cloud URL: %w", err)
	}
	if opts.PartID == "" || opts.PartSecret == "" {
		return nil, errors.New("part id and secret are required")
	}
	if strings.ContainsAny(opts.PartID, ": \r\n") {
		return nil, fmt.Errorf("part id %q has a character not allowed in ids", opts.PartID)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	proxy, err := proxyFunc(getenv)
	if err != nil {
		return nil, err
	}
	if u, _ := url.Parse(opts.CloudURL); u != nil {
		if via, err := proxy(&http.Request{URL: u}); err == nil && via != nil {
			// Once per client, and never with the proxy's credentials.
			log.Info("cloud connections go through a proxy", zap.String("proxy", via.Scheme+"://"+via.Host))
		}
	}
	transport := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w %s holds no PEM certificate", ErrCAFile, opts.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	} else if len(opts.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(opts.CAPEM) {
			return nil, fmt.Errorf("%w: ca_pem holds no PEM certificate", ErrCAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}

	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport}
	rc.Logger = zapLeveled{log.Named("http")}
	rc.RetryMax = cmp.Or(opts.RetryMax, 4)
	rc.RetryWaitMin = cmp.Or(opts.RetryWaitMin, 500*time.Millisecond)
	rc.RetryWaitMax = cmp.Or(opts.RetryWaitMax, 5*time.Second)
	rc.Backoff = cappedBackoff
	// Give connect the last answer rather than retryablehttp's own error, so
	// the caller sees the cloud's code and message.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler

	copts := []connect.ClientOption{
		connect.WithInterceptors(credential.Bearer{Authorization: "Part " + opts.PartID + ":" + opts.PartSecret}, tooLarge{}),
		connect.WithReadMaxBytes(MaxResponseBytes),
	}
	hc := &http.Client{Transport: rewindTransport{c: rc, fallback: &retryablehttp.RoundTripper{Client: rc}}}
	base := strings.TrimSuffix(opts.CloudURL, "/")
	switch opts.Compression {
	case "", codec.Zstd:
		// Two clients on one transport: the Syncer chooses, per upload,
		// whether its body is worth compressing (see compressionPolicy).
		return chooser{
			SyncServiceClient: syncv1connect.NewSyncServiceClient(hc, base, slices.Concat(copts, codec.ClientOptions())...),
			plain:             syncv1connect.NewSyncServiceClient(hc, base, copts...),
		}, nil
	case "gzip":
		copts = append(copts, connect.WithSendGzip())
	case "identity":
	case "none":
		copts = append(copts, connect.WithAcceptCompression("gzip", nil, nil))
	default:
		return nil, fmt.Errorf("compression %q: want zstd, gzip, identity or none", opts.Compression)
	}
	return syncv1connect.NewSyncServiceClient(hc, base, copts...), nil
}

// chooser is NewClient's zstd client: an upload whose context carries
// withPlain goes through plain, which sends its body uncompressed; every
// other call, and every answer, is as the zstd client's.
type chooser struct {
	syncv1connect.SyncServiceClient
	plain syncv1connect.SyncServiceClient
}

// plainKey marks an upload's context: send its body uncompressed.
type plainKey struct{}

// withPlain returns ctx marked so that a chooser sends the upload made with
// it uncompressed.
func withPlain(ctx context.Context) context.Context {
	return context.WithValue(ctx, plainKey{}, true)
}

// isPlain reports whether ctx was marked by withPlain.
func isPlain(ctx context.Context) bool {
	plain, _ := ctx.Value(plainKey{}).(bool)
	return plain
}

// Upload sends req compressed, or uncompressed when ctx says so.
func (c chooser) Upload(ctx context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	if isPlain(ctx) {
		return c.plain.Upload(ctx, req)
	}
	return c.SyncServiceClient.Upload(ctx, req)
}

// choosesCompression marks a client that honours withPlain.
func (chooser) choosesCompression() {}

// ErrResponseTooLarge marks a call that failed because the cloud's answer
// was larger than MaxResponseBytes: something is wrong with whatever
// answered, which retrying later will not fix.
var ErrResponseTooLarge = errors.New("the cloud's answer is larger than this part accepts")

// tooLarge tells an answer over the part's read limit from a busy cloud.
// Connect reports both as ResourceExhausted, and callers (the package
// downloader) take that code for "the cloud is busy, come back later";
// an answer too large for the part is neither busy nor temporary, so it
// becomes an Internal error that says what happened and the limit.
type tooLarge struct{}

func (tooLarge) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		return res, answerTooLarge(err)
	}
}

func (tooLarge) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (tooLarge) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// answerTooLarge turns connect's own read-limit error into one wrapping
// ErrResponseTooLarge; a ResourceExhausted the cloud sent (a wire error)
// stays as it is.
func answerTooLarge(err error) error {
	if err == nil || connect.CodeOf(err) != connect.CodeResourceExhausted || connect.IsWireError(err) {
		return err
	}
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%w (limit %d bytes): %w", ErrResponseTooLarge, MaxResponseBytes, err))
}

// rewindTransport retries through retryablehttp without copying request
// bodies. retryablehttp's own RoundTripper reads a body into a buffer of
// its own so it can send it again; connect's unary requests can already be
// replayed (GetBody rewinds the encoded message), so for those each
// attempt reads connect's buffer instead, and an upload batch is not
// copied once more on its way out.
type rewindTransport struct {
	c        *retryablehttp.Client
	fallback http.RoundTripper
}

func (t rewindTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.GetBody == nil || req.Body == nil || req.Body == http.NoBody {
		return t.fallback.RoundTrip(req)
	}
	body := retryablehttp.ReaderFunc(func() (io.Reader, error) { return req.GetBody() })
	rreq, err := retryablehttp.NewRequestWithContext(req.Context(), req.Method, req.URL.String(), body)
	if err != nil {
		return nil, err
	}
	// The caller's request as it is (headers, length, context), with the
	// replayable body set above.
	rreq.Request = req
	res, err := t.c.Do(rreq)
	// As retryablehttp.RoundTripper: the transport's own error, not one
	// wrapped in a url.Error that the client would wrap again.
	if uerr, ok := err.(*url.Error); ok {
		return res, uerr.Unwrap()
	}
	return res, err
}

// proxyFunc resolves the proxy for each request from the proxy settings
// getenv reads, as curl and Go's own http.ProxyFromEnvironment do, with two
// differences. The settings are read per client rather than once per
// process, so a daemon's next client (and a test) sees a changed
// environment. And a setting that is not a URL is an error here, not a
// silent direct connection; the error names the variable but never its
// value, which may hold a user name and password. Requests to localhost
// and loopback addresses never go through a proxy.
func proxyFunc(getenv func(string) string) (func(*http.Request) (*url.URL, error), error) {
	get := func(names ...string) (string, string) {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	cfg := httpproxy.Config{CGI: getenv("REQUEST_METHOD") != ""}
	var err error
	if cfg.HTTPSProxy, err = checkProxyURL(get("https_proxy", "HTTPS_PROXY")); err != nil {
		return nil, err
	}
	if cfg.HTTPProxy, err = checkProxyURL(get("http_proxy", "HTTP_PROXY")); err != nil {
		return nil, err
	}
	_, cfg.NoProxy = get("no_proxy", "NO_PROXY")
	resolve := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) {
		u, err := resolve(r.URL)
		if err != nil {
			// httpproxy's errors may quote the setting; this one cannot.
			return nil, errors.New("the proxy settings do not apply to this request")
		}
		return u, nil
	}, nil
}

// checkProxyURL checks the setting v of variable name, a URL or host[:port]
// meaning http://host[:port], with a scheme Go's transport can speak, and
// returns it as a URL. httpproxy alone would take a malformed URL for a
// host[:port] and quietly use nonsense.
func checkProxyURL(name, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("proxy setting %s is not a URL such as http://proxy.example.com:3128", name)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
		return v, nil
	}
	return "", fmt.Errorf("proxy setting %s: the scheme is not http, https, socks5 or socks5h", name)
}

// cappedBackoff is exponential backoff that honours a Retry-After answer, but
// never waits past max: the cycle has a deadline, and the next cycle retries.
func cappedBackoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(minWait, maxWait, attempt, resp), maxWait)
}

// zapLeveled adapts zap to retryablehttp's logger. retryablehttp's default
// logger prints to stderr; this one keeps its messages at debug level in the
// daemon's own log, and logs URLs only as scheme, host and path.
type zapLeveled struct{ log *zap.Logger }

// Error and Warn are per attempt; the syncer logs the cycle's outcome once
// per state change. At error level, a part offline for 60 days would fill
// its never-evicted warn log stream with one line per retry.
func (z zapLeveled) Error(msg string, kv ...any) { z.log.Debug(msg, fields(kv)...) }
func (z zapLeveled) Warn(msg string, kv ...any)  { z.log.Debug(msg, fields(kv)...) }
func (z zapLeveled) Info(msg string, kv ...any)  { z.log.Debug(msg, fields(kv)...) }
func (z zapLeveled) Debug(msg string, kv ...any) { z.log.Debug(msg, fields(kv)...) }

func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		key, _ := kv[i].(string)
		if key == "" {
			continue
		}
		val := kv[i+1]
		if s, ok := val.(string); ok {
			val = scrubURL(s)
		}
		out = append(out, zap.Any(key, val))
	}
	return out
}

// scrubURL drops the user info and query of anything that parses as an
// absolute URL, so no credential can reach a log line through one.
func scrubURL(s string) string {
	for _, word := range strings.Fields(s) {
		u, err := url.Parse(word)
		if err != nil || u.Host == "" || (u.User == nil && u.RawQuery == "") {
			continue
		}
		u.User, u.RawQuery = nil, ""
		s = strings.Replace(s, word, u.String(), 1)
	}
	return s
}
