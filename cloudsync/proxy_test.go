package cloudsync_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// connectProxy is an HTTPS proxy on loopback, as a site's egress proxy
// would be: it answers CONNECT host:port by dialing where that name leads
// (routes stands in for its DNS) and splicing the two connections. It
// counts the CONNECTs and keeps what each carried as Proxy-Authorization.
type connectProxy struct {
	ln     net.Listener
	routes map[string]string

	mu       gosync.Mutex
	connects []string // CONNECT targets, in order
	auths    []string
	conns    map[net.Conn]struct{}
}

func newConnectProxy(t *testing.T, routes map[string]string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, routes: routes, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c, true)
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *connectProxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *connectProxy) serve(c net.Conn) {
	defer func() {
		c.Close()
		p.track(c, false)
	}()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.connects = append(p.connects, req.Host)
	p.auths = append(p.auths, req.Header.Get("Proxy-Authorization"))
	to, ok := p.routes[req.Host]
	p.mu.Unlock()
	if req.Method != http.MethodConnect || !ok {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", to)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.track(up, true)
	defer func() {
		up.Close()
		p.track(up, false)
	}()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	copied := make(chan struct{})
	go func() {
		// What the client sent after the CONNECT may already be buffered.
		_, _ = br.WriteTo(up)
		up.(*net.TCPConn).CloseWrite()
		close(copied)
	}()
	_, _ = io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-copied
}

func (p *connectProxy) seen() (connects, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.connects...), append([]string(nil), p.auths...)
}

// proxyWorld is a part syncing with a real cloud over HTTPS, reaching it
// by a name on the cloud's certificate that no DNS knows.
type proxyWorld struct {
	cloud *cloudtest.Cloud
	part  cloudtest.Part
	name  string // cloud.outpost.test:PORT
}

func newProxyWorld(t *testing.T) *proxyWorld {
	t.Helper()
	c := cloudtest.New(t, cloudtest.Options{Clock: clock.NewFake(epoch), TLS: true, Hostnames: []string{"cloud.outpost.test"}})
	_, port, err := net.SplitHostPort(c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	name := net.JoinHostPort("cloud.outpost.test", port)
	return &proxyWorld{cloud: c, name: name, part: c.Provision(t, cloudtest.PartOptions{CloudURL: "https://" + name, Config: robotConfig()})}
}

// syncOnce runs one full cycle of a fresh part store through client:
// documents down, a backlog of log lines up exactly once, a status report.
func (pw *proxyWorld) syncOnce(t *testing.T, client syncv1connect.SyncServiceClient) {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	store, err := cache.Open(ctx, t.TempDir(), cache.Options{Clock: clk, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before := pw.cloud.Ingested(t, pw.part.ID)[string(cache.StreamLogsWarn)].Records
	for i := range 25 {
		if _, err := store.Append(ctx, cache.StreamLogsWarn, cache.Record{Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	offline := cloudsync.NewOfflineClock(clk, cache.OfflineClock{})
	s, err := cloudsync.New(cloudsync.Options{Store: store, Client: client, Clock: clk, Offline: offline,
		Trust: cloudsync.NewTrust(pw.part.ID, pw.part.Keys, offline), CycleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Cycle(ctx)
	if res.Err != nil || !res.Pulled || res.NewGrants == 0 || res.NewConfig == 0 || res.Uploaded[cache.StreamLogsWarn] != 25 {
		t.Fatalf("cycle: %+v", res)
	}
	if got := pw.cloud.Ingested(t, pw.part.ID)[string(cache.StreamLogsWarn)]; got.Records != before+25 || got.Conflicts != 0 {
		t.Fatalf("the cloud holds %+v warn lines, want %d exactly once", got, before+25)
	}
}

// TestSyncThroughAnHTTPSProxy syncs a part with a cloud it can only reach
// through its site's HTTPS proxy: the cloud has a certificate for
// cloud.outpost.test from a private CA, the part's bootstrap file names
// that URL and CA file, and HTTPS_PROXY (with credentials) names the
// proxy. The part never resolves the name (the proxy does), so the whole
// cycle going through proves the proxy was used; the proxy counts it too.
func TestSyncThroughAnHTTPSProxy(t *testing.T) {
	pw := newProxyWorld(t)
	proxy := newConnectProxy(t, map[string]string{pw.name: pw.cloud.Addr()})
	env := map[string]string{"HTTPS_PROXY": "http://site-user:proxy-pass-1234@" + proxy.ln.Addr().String()}
	core, logs := observer.New(zapcore.DebugLevel)
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{
		CloudURL: pw.part.CloudURL, PartID: pw.part.ID, PartSecret: pw.part.Secret, CAFile: pw.part.Bootstrap.GetCaFile(),
		Getenv: func(k string) string { return env[k] }, Logger: zap.New(core),
		RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	pw.syncOnce(t, client)

	connects, auths := proxy.seen()
	if len(connects) == 0 {
		t.Fatal("the cycle went through without a CONNECT")
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("site-user:proxy-pass-1234"))
	for i, target := range connects {
		if target != pw.name || auths[i] != want {
			t.Fatalf("CONNECT %d: to %q with Proxy-Authorization %q; want %q with the proxy's credentials", i, target, auths[i], pw.name)
		}
	}
	if n := logs.FilterMessage("cloud connections go through a proxy").Len(); n != 1 {
		t.Fatalf("the proxy was logged %d times, want once", n)
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, "proxy-pass-1234") || strings.Contains(line, "site-user") {
			t.Fatalf("a log line holds the proxy's credentials: %s", line)
		}
	}
}

// TestNoProxyBypassesTheProxy names the cloud in NO_PROXY: the part then
// dials it itself. No DNS knows the name, so the test's dialer stands in
// for one and counts the direct connections; the proxy sees nothing.
func TestNoProxyBypassesTheProxy(t *testing.T) {
	pw := newProxyWorld(t)
	proxy := newConnectProxy(t, map[string]string{pw.name: pw.cloud.Addr()})
	var mu gosync.Mutex
	direct := 0
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == pw.name {
			mu.Lock()
			direct++
			mu.Unlock()
			addr = pw.cloud.Addr()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	for _, noProxy := range []string{"cloud.outpost.test", ".outpost.test", "*"} {
		t.Run(noProxy, func(t *testing.T) {
			env := map[string]string{"https_proxy": "http://" + proxy.ln.Addr().String(), "no_proxy": noProxy}
			client, err := cloudsync.NewClientWithDial(cloudsync.ClientOptions{
				CloudURL: pw.part.CloudURL, PartID: pw.part.ID, PartSecret: pw.part.Secret, CAFile: pw.part.Bootstrap.GetCaFile(),
				Getenv: func(k string) string { return env[k] }, RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
			}, dial)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			direct = 0
			mu.Unlock()
			pw.syncOnce(t, client)
			mu.Lock()
			defer mu.Unlock()
			if direct == 0 {
				t.Fatal("the part did not dial the cloud itself")
			}
			if connects, _ := proxy.seen(); len(connects) != 0 {
				t.Fatalf("the proxy saw CONNECTs %q", connects)
			}
		})
	}
}
