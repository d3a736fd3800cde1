// Package webtest drives a real headless Chromium from Go tests, for the
// front end's tests (package web) and the browser tests of the cloud and
// the daemon. Chromium is Debian's chromium package, which scripts/deps
// installs; without it a test fails saying so. The browser is driven over
// the DevTools protocol with chromedp.
//
// A test binary starts the browser once, lazily, and closes it at its end:
//
//	var chromium = webtest.New()
//
//	func TestMain(m *testing.M) { os.Exit(chromium.Run(m)) }
//
//	func TestPage(t *testing.T) {
//		tab := chromium.NewTab(t)
//		tab.Navigate(srv.URL)
//		tab.WaitVisible("#signin")
//		...
//	}
//
// Every tab collects the page's console errors, uncaught exceptions, failed
// loads and Content-Security-Policy violations, and the test fails at its
// end when there are any it did not take with TakeCSPViolations or
// TakeConsoleErrors. A Connect call answered with an error status is not
// one: that is how the protocol carries a refusal, which the page shows. Every wait is a condition the browser checks as the
// page changes, bounded by the test's deadline (or Wait when the test has
// none): nothing sleeps.
//
// The browser runs with a temporary profile, reaches nothing but loopback
// (every host name but localhost fails to resolve; no proxy; background
// services off), gathers WebRTC candidates on loopback with their real
// addresses (no mDNS names), and runs without its sandbox only when the
// test runs as root, as Chromium refuses to start otherwise.
//
// Screenshots (Tab.Screenshot) are PNG files written to the folder named
// by $OUTPOST_SCREENSHOTS, one subfolder per test, kept after the run; when
// it is unset they go to the test's temporary folder and are removed with it.
package webtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ScreenshotsEnv names the folder screenshots are kept in.
const ScreenshotsEnv = "OUTPOST_SCREENSHOTS"

// ChromiumEnv names a Chromium binary to use instead of the one on PATH.
const ChromiumEnv = "OUTPOST_CHROMIUM"

// Wait bounds each wait of a test that has no deadline of its own.
const Wait = 2 * time.Minute

// cspBinding is the page binding the violation listener reports through.
const cspBinding = "__webtestCSPViolation"

// cspListener runs in every document before its own scripts: DevTools'
// injection is not subject to the page's CSP.
const cspListener = `document.addEventListener('securitypolicyviolation', (e) => {
  globalThis.` + cspBinding + `(JSON.stringify({directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample}));
});`

// Browser is a headless Chromium shared by the tests of one binary. Its
// zero value is not usable: make one with New.
type Browser struct {
	mu      sync.Mutex
	started bool
	err     error
	version string
	profile string
	alloc   context.CancelFunc
	ctx     context.Context // the browser's, for new tabs
	cancel  context.CancelFunc
}

// New returns a Browser that starts Chromium on its first NewTab.
func New() *Browser { return &Browser{} }

// Run runs the tests and then closes the browser; use it from TestMain.
func (b *Browser) Run(m *testing.M) int {
	code := m.Run()
	b.Close()
	return code
}

// Close ends the browser and removes its profile.
func (b *Browser) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		b.cancel()
		b.alloc()
		b.cancel = nil
	}
	if b.profile != "" {
		_ = os.RemoveAll(b.profile)
		b.profile = ""
	}
}

// ChromiumPath returns the Chromium binary: $OUTPOST_CHROMIUM, or chromium
// (Debian's name) or chromium-browser on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("webtest: %s=%s is not a program (%v): unset it and run scripts/deps, which installs Debian's chromium package", ChromiumEnv, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("webtest: Chromium is not installed: run scripts/deps (it installs Debian's chromium package), or set " + ChromiumEnv)
}

// allocatorOptions are Chromium's flags: headless, a private profile, no
// network beyond loopback, WebRTC on loopback with real addresses.
func allocatorOptions(path, profile string) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		// Replaces the defaults' list: mDNS names would hide loopback
		// candidates from a part whose ICE is confined to loopback.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,AutofillServerCommunication"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("mute-audio", true),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	return opts
}

// start launches Chromium once; later calls return the first outcome.
func (b *Browser) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return b.err
	}
	b.started = true
	path, err := ChromiumPath()
	if err != nil {
		b.err = err
		return err
	}
	if b.profile, err = os.MkdirTemp("", "webtest-chromium-"); err != nil {
		b.err = fmt.Errorf("webtest: make Chromium's profile folder: %w", err)
		return b.err
	}
	allocCtx, alloc := chromedp.NewExecAllocator(context.Background(), allocatorOptions(path, b.profile)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first action on ctx itself starts the browser: its life is tied
	// to the context it starts with, so that one must not be a shorter one.
	err = chromedp.Do(ctx)
	var v browser.GetVersionResult
	if err == nil {
		startCtx, stop := context.WithTimeout(ctx, Wait)
		v, err = chromedp.CallBrowser(startCtx, browser.GetVersion, cdp.Empty{})
		stop()
	}
	if err != nil {
		cancel()
		alloc()
		b.err = fmt.Errorf("webtest: start Chromium (%s): %w", path, err)
		return b.err
	}
	b.version = v.Product
	b.ctx, b.cancel, b.alloc = ctx, cancel, alloc
	return nil
}

// Version returns the browser's product string, such as
// "Chrome/156.0.8078.114", starting it if needed.
func (b *Browser) Version(t testing.TB) string {
	t.Helper()
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	return b.version
}

// Tab is one browser tab of a test. Its methods fail the test on error.
type Tab struct {
	t    testing.TB
	ctx  context.Context // the tab's chromedp context
	wait time.Duration

	mu       sync.Mutex
	console  []string
	csp      []string
	cspMore  chan struct{} // signalled on each violation
	shotDir  string
	shotSeen map[string]bool
}

// NewTab opens a tab for t, closed when t ends; at t's end the test fails
// if the page logged errors or violated its CSP.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(b.ctx)
	tab := &Tab{t: t, ctx: ctx, wait: Wait, shotSeen: map[string]bool{}, cspMore: make(chan struct{}, 1)}
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dt.Deadline(); ok {
			// Leave the test time to report what it waited for.
			if left := time.Until(d) * 9 / 10; left < tab.wait {
				tab.wait = left
			}
		}
	}
	t.Cleanup(func() {
		tab.check()
		cancel()
	})
	if err := chromedp.Listen(ctx, tab.onEvent); err != nil {
		t.Fatalf("webtest: open a tab: %v", err)
	}
	tab.do("enable the log", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
		return err
	})
	return tab
}

// onEvent collects problems; it runs on chromedp's reading goroutine and
// must return at once.
func (tab *Tab) onEvent(ev any) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventBindingCalled:
		if e.Name == cspBinding {
			tab.csp = append(tab.csp, e.Payload)
			select {
			case tab.cspMore <- struct{}{}:
			default:
			}
		}
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil && e.ExceptionDetails.Exception.Description != "" {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		tab.console = append(tab.console, "uncaught: "+msg)
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			tab.console = append(tab.console, "console.error: "+strings.Join(parts, " "))
		}
	case *log.EventEntryAdded:
		if e.Entry != nil && e.Entry.Level == log.EntryLevelError && !expectedLogError(e.Entry) {
			tab.console = append(tab.console, fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}
}

// connectProcedure matches the path of a Connect call.
var connectProcedure = regexp.MustCompile(`/[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\.[A-Za-z0-9_]+Service/[A-Za-z0-9_]+$`)

// expectedLogError reports the browser log's errors that are not the
// page's: a CSP violation (the violation listener reports each one, with
// its details), and the HTTP status of a Connect call, which is how the
// protocol carries a refusal that the page then shows.
func expectedLogError(e *log.Entry) bool {
	switch e.Source {
	case log.EntrySourceSecurity:
		return strings.Contains(e.Text, "Content Security Policy") || strings.Contains(e.Text, "Trusted")
	case log.EntrySourceNetwork:
		u, err := url.Parse(e.URL)
		return err == nil && strings.Contains(e.Text, "the server responded with a status of") && connectProcedure.MatchString(u.Path)
	}
	return false
}

// check fails the test with the problems no one took.
func (tab *Tab) check() {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	for _, v := range tab.csp {
		tab.t.Errorf("webtest: the page violated its Content-Security-Policy: %s", v)
	}
	for _, c := range tab.console {
		tab.t.Errorf("webtest: the page logged an error: %s", c)
	}
}

// TakeCSPViolations waits until the page reported at least n CSP
// violations and returns (and forgets) all reported so far, as JSON objects
// {directive, blocked, source, line, sample}: for tests that provoke one.
func (tab *Tab) TakeCSPViolations(n int) []string {
	tab.t.Helper()
	var out []string
	tab.do(fmt.Sprintf("wait for %d CSP violations", n), func(ctx context.Context) error {
		for {
			tab.mu.Lock()
			if len(tab.csp) >= n {
				out, tab.csp = tab.csp, nil
				tab.mu.Unlock()
				return nil
			}
			tab.mu.Unlock()
			select {
			case <-tab.cspMore:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	return out
}

// TakeConsoleErrors returns (and forgets) the errors logged so far whose
// text matches re: for tests that provoke one.
func (tab *Tab) TakeConsoleErrors(re *regexp.Regexp) []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var took, kept []string
	for _, c := range tab.console {
		if re.MatchString(c) {
			took = append(took, c)
		} else {
			kept = append(kept, c)
		}
	}
	tab.console = kept
	return took
}

// Context returns a context of the tab bounded by the tab's wait, for
// chromedp actions this package has no helper for; cancel it when done.
func (tab *Tab) Context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(tab.ctx, tab.wait)
}

// do runs f with the tab's bounded context, failing the test with what was
// being done.
func (tab *Tab) do(what string, f func(ctx context.Context) error) {
	tab.t.Helper()
	ctx, cancel := tab.Context()
	defer cancel()
	if err := f(ctx); err != nil {
		tab.t.Fatalf("webtest: %s: %v", what, err)
	}
}

// Navigate loads url and waits for its load event.
func (tab *Tab) Navigate(url string) {
	tab.t.Helper()
	tab.do("navigate to "+url, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(url))
	})
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (tab *Tab) WaitVisible(sel string) {
	tab.t.Helper()
	tab.do("wait for "+sel+" to be visible", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.WaitVisible(sel))
	})
}

// WaitGone waits until no element matches the CSS selector.
func (tab *Tab) WaitGone(sel string) {
	tab.t.Helper()
	tab.do("wait for "+sel+" to go", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.WaitNotPresent(sel))
	})
}

// Click clicks the element matching sel, once it is visible.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.do("click "+sel, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.WaitVisible(sel), chromedp.Click(sel))
	})
}

// Type focuses the element matching sel and types text into it, key by key.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	tab.do("type into "+sel, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.WaitVisible(sel), chromedp.SendKeys(sel, text))
	})
}

// Text returns the visible text of the element matching sel.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	var s string
	tab.do("read the text of "+sel, func(ctx context.Context) error {
		var err error
		s, err = chromedp.Run(ctx, chromedp.Text(sel))
		return err
	})
	return s
}

// waitTextJS resolves once the element matching the selector has text
// containing the wanted string, checking at once and on every DOM change.
const waitTextJS = `(async (sel, want) => {
  const ok = () => { const el = document.querySelector(sel); return el !== null && el.textContent.includes(want); };
  if (ok()) return true;
  await new Promise((resolve) => {
    const mo = new MutationObserver(() => { if (ok()) { mo.disconnect(); resolve(); } });
    mo.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
  });
  return true;
})(%s, %s)`

// WaitText waits until the element matching sel has text containing want,
// and returns its text.
func (tab *Tab) WaitText(sel, want string) string {
	tab.t.Helper()
	tab.do(fmt.Sprintf("wait for %s to say %q", sel, want), func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(waitTextJS, jsString(sel), jsString(want)), chromedp.EvalAwaitPromise))
		return err
	})
	return tab.Text(sel)
}

// Eval evaluates a JavaScript expression in the page (awaiting it when it
// is a promise) and decodes its JSON value into out (nil to drop it).
// DevTools evaluation is not subject to the page's CSP, so a test can
// import the page's own modules with import(): those loads are.
func (tab *Tab) Eval(expr string, out any) {
	tab.t.Helper()
	tab.do("evaluate "+short(expr), func(ctx context.Context) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			return err
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(raw, out)
	})
}

// EvalErr is Eval for an expression expected to throw: it returns the
// exception's text, and fails the test if there was none.
func (tab *Tab) EvalErr(expr string) string {
	tab.t.Helper()
	var msg string
	tab.do("evaluate "+short(expr), func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		var ex *chromedp.ExceptionError
		if !errors.As(err, &ex) {
			return fmt.Errorf("want an exception, got %v", err)
		}
		msg = ex.Error()
		return nil
	})
	return msg
}

// SetViewport sets the page's size in CSS pixels; mobile emulates a phone
// (touch, mobile viewport rules).
func (tab *Tab) SetViewport(width, height int, mobile bool) {
	tab.t.Helper()
	tab.do(fmt.Sprintf("set the viewport to %dx%d", width, height), func(ctx context.Context) error {
		var opts []chromedp.EmulateViewportOption
		if mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
		}
		return chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height), opts...))
	})
}

// Screenshot saves the whole page as name.png (see the package doc for the
// folder) and returns the file's path.
func (tab *Tab) Screenshot(name string) string {
	tab.t.Helper()
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(name) {
		tab.t.Fatalf("webtest: screenshot name %q: use letters, digits, - and _", name)
	}
	tab.mu.Lock()
	if tab.shotDir == "" {
		dir := tab.t.TempDir()
		if root := os.Getenv(ScreenshotsEnv); root != "" {
			dir = filepath.Join(root, safeName(tab.t.Name()))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tab.mu.Unlock()
				tab.t.Fatalf("webtest: make the screenshot folder: %v", err)
			}
		}
		tab.shotDir = dir
	}
	dup := tab.shotSeen[name]
	tab.shotSeen[name] = true
	dir := tab.shotDir
	tab.mu.Unlock()
	if dup {
		tab.t.Fatalf("webtest: a screenshot named %q was taken already in this test", name)
	}
	var png []byte
	tab.do("take a screenshot", func(ctx context.Context) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tab.t.Fatalf("webtest: save the screenshot: %v", err)
	}
	tab.t.Logf("webtest: screenshot %s", p)
	return p
}

// safeName turns a test's name into a folder name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// JSString quotes s as a JavaScript string literal, for building
// expressions for Eval from test data.
func JSString(s string) string { return jsString(s) }

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Problems returns the console errors and CSP violations collected so far,
// without taking them.
func (tab *Tab) Problems() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return slices.Concat(tab.console, tab.csp)
}
