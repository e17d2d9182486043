package bitssim

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// proxyKey carries a job's proxy in a request's context to the
// provider's transport.
type proxyKey struct{}

// proxyFromContext is the Proxy function of the provider's own transport.
func proxyFromContext(r *http.Request) (*url.URL, error) {
	if u, ok := r.Context().Value(proxyKey{}).(*url.URL); ok {
		return u, nil
	}
	return nil, nil
}

// jobProxy returns the proxy a job's request to target goes through under
// SetProxySettings: only Override (2) names one; Preconfig, NoProxy and
// AutoDetect go direct, as the simulated host has no system proxy. The
// first entry of the space-delimited list is used, unless the target host
// matches the bypass list ("<local>" matches names without a dot, "*"
// wildcards match as in WinHTTP).
func jobProxy(usage bitsprov.ProxyUsage, list, bypass, target string) *url.URL {
	if usage != bitsprov.ProxyOverride {
		return nil
	}
	tu, err := url.Parse(target)
	if err != nil {
		return nil
	}
	host := strings.ToLower(tu.Hostname())
	for _, b := range strings.FieldsFunc(strings.ToLower(bypass), isListSep) {
		if b == "<local>" && !strings.Contains(host, ".") && net.ParseIP(host) == nil {
			return nil
		}
		if ok, _ := pathMatch(b, host); ok {
			return nil
		}
	}
	entries := strings.FieldsFunc(list, isListSep)
	if len(entries) == 0 {
		return nil
	}
	e := entries[0]
	// WinHTTP accepts "scheme=host:port" entries; keep the host part.
	if i := strings.Index(e, "="); i >= 0 {
		e = e[i+1:]
	}
	if !strings.Contains(e, "://") {
		e = "http://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" {
		return nil
	}
	return u
}

func isListSep(r rune) bool { return r == ' ' || r == ';' || r == ',' || r == '\t' }

// pathMatch matches a host against a bypass pattern with '*' wildcards.
func pathMatch(pattern, host string) (bool, error) {
	if !strings.Contains(pattern, "*") {
		return pattern == host, nil
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(host, parts[0]) {
		return false, nil
	}
	rest := host[len(parts[0]):]
	for i, p := range parts[1:] {
		last := i == len(parts)-2
		switch {
		case last:
			return strings.HasSuffix(rest, p), nil
		default:
			k := strings.Index(rest, p)
			if k < 0 {
				return false, nil
			}
			rest = rest[k+len(p):]
		}
	}
	return true, nil
}

// withProxy returns ctx carrying the job's proxy for target, and the
// Proxy-Authorization value from the job's proxy Basic credentials.
func (t *transferCtx) withProxy(ctx context.Context, target string) (context.Context, string) {
	u := jobProxy(t.proxyUsage, t.proxyList, t.bypassList, target)
	if u == nil {
		return ctx, ""
	}
	auth := ""
	if t.proxyUser != "" {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(t.proxyUser+":"+t.proxyPass))
	}
	return context.WithValue(ctx, proxyKey{}, u), auth
}
