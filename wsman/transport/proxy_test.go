package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHTTPSSchemeProxy: an https:// proxy is spoken to over TLS, and the
// CONNECT tunnel inside carries TLS to the host, as net/http did.
func TestHTTPSSchemeProxy(t *testing.T) {
	pki := newTestPKI(t)
	rec := &recorder{}
	srv := newTLSServer(t, pki, basicHandler(rec, "u", "p"), tls.NoClientCert)
	proxy := newConnectProxyTLS(t, pki)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil || proxyURL.Scheme != "https" {
		t.Fatalf("proxy URL %q, %v", proxy.URL, err)
	}
	tr, err := NewBasic(Config{User: "u", Password: "p", CAFile: pki.CAFile, Proxy: http.ProxyURL(proxyURL)})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	for i := range 2 {
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
		if err != nil || resp.StatusCode != 200 || string(resp.Body) != testReply {
			t.Fatalf("request %d: got %+v, %v", i, resp, err)
		}
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if diff := cmp.Diff([]string{strings.TrimPrefix(srv.URL, "https://")}, proxy.targets); diff != "" {
		t.Errorf("CONNECT targets (-want +got):\n%s", diff)
	}
}

// TestProxyErrorsHideCredentials: a proxy setting that cannot be used
// (http.ProxyFromEnvironment quotes a malformed HTTPS_PROXY whole) never
// puts the proxy's password in the error; a SOCKS proxy is refused by
// name.
func TestProxyErrorsHideCredentials(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy func(*http.Request) (*url.URL, error)
		want  string
	}{{
		name: "malformed",
		proxy: func(*http.Request) (*url.URL, error) {
			return nil, errors.New(`invalid proxy address "http://bob:Pr0xyS3cret@proxy:80%zz": invalid URL escape`)
		},
		want: `post to win1:5985: proxy for win1:5985: invalid proxy address "http://REDACTED@proxy:80%zz": invalid URL escape`,
	}, {
		name: "socks5",
		proxy: func(*http.Request) (*url.URL, error) {
			return url.Parse("socks5://bob:Pr0xyS3cret@proxy:1080")
		},
		want: `post to win1:5985: proxy proxy:1080 for win1:5985: scheme "socks5" is not supported (use an http:// or https:// proxy)`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: tc.proxy})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.RoundTrip(context.Background(), &Request{URL: "http://win1:5985/wsman", Body: []byte("<x/>")})
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrNotSent) {
				t.Fatalf("err = %v\nwant %s (ErrNotSent)", err, tc.want)
			}
			if strings.Contains(err.Error(), "Pr0xyS3cret") {
				t.Fatal("the proxy password is in the error")
			}
		})
	}
}
