package bitsprov_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// urlGroups is a stand-in for BitsCompactServerUrlGroup, which bitssim does
// not serve: just enough state to answer the URL-group methods the way
// bits-provider.md §1.5 documents them (out parameters, then ReturnValue
// 0). It exists so the url-groups fixture pins the client's request
// envelopes; its answers are not evidence of Windows' behaviour.
type urlGroups struct {
	mu     sync.Mutex
	groups map[string]*urlGroup // key: lower-case prefix
	order  []string
}

type urlGroup struct {
	prefix string
	urls   map[string]string
	props  map[string]string
	ssl    map[string][2][]string // port -> store, hash bytes
	auth   map[string]string      // scheme -> "true"/"false"
}

// serveURLGroups registers the stand-in on a recording host.
func serveURLGroups(_ *testing.T, h *bitssim.Host) {
	h.Server.Handle(bitsprov.URLGroupResourceURI, &urlGroups{groups: map[string]*urlGroup{}}, "UrlGroup")
}

func (u *urlGroups) instance(g *urlGroup) *wsman.Instance {
	in := wsman.NewInstance(bitsprov.URLGroupResourceURI)
	in.Set("UrlGroup", g.prefix)
	return in
}

func (u *urlGroups) lookup(r *wsmantest.Request) (*urlGroup, error) {
	name, _ := r.Selector("UrlGroup")
	g := u.groups[strings.ToLower(name)]
	if g == nil {
		return nil, wsmantest.FaultNotFound("")
	}
	return g, nil
}

func (u *urlGroups) Get(_ context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	g, err := u.lookup(r)
	if err != nil {
		return nil, err
	}
	return u.instance(g), nil
}

func (u *urlGroups) Put(context.Context, *wsmantest.Request, *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultActionNotSupported(wsman.ActionPut)
}

func (u *urlGroups) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*wsman.Instance
	for _, k := range u.order {
		out = append(out, u.instance(u.groups[k]))
	}
	return out, nil
}

func arg(in *wsman.Instance, name string) string {
	if in == nil {
		return ""
	}
	p, ok := in.Property(name)
	if !ok || len(p.Values) == 0 {
		return ""
	}
	return p.Values[0].Text
}

func args(in *wsman.Instance, name string) []string {
	if in == nil {
		return nil
	}
	p, ok := in.Property(name)
	if !ok {
		return nil
	}
	var out []string
	for _, v := range p.Values {
		out = append(out, v.Text)
	}
	return out
}

func (u *urlGroups) Invoke(_ context.Context, r *wsmantest.Request, method string, in *wsman.Instance) (*wsman.Instance, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := &wsman.Instance{ClassName: method + "_OUTPUT", ResourceURI: bitsprov.URLGroupResourceURI}
	done := func(props ...wsman.Property) (*wsman.Instance, error) {
		out.Props = append(props, wsman.Property{Name: "ReturnValue", Values: []wsman.Value{{Text: "0"}}})
		return out, nil
	}
	text := func(name string, vs ...string) wsman.Property {
		p := wsman.Property{Name: name}
		for _, v := range vs {
			p.Values = append(p.Values, wsman.Value{Text: v})
		}
		if len(vs) == 0 {
			p.Values = []wsman.Value{{Kind: wsman.KindNil}}
		}
		return p
	}
	if method == "CreateUrlGroup" {
		prefix := arg(in, "UrlGroup")
		if _, ok := u.groups[strings.ToLower(prefix)]; !ok {
			u.groups[strings.ToLower(prefix)] = &urlGroup{prefix: prefix, urls: map[string]string{},
				props: map[string]string{"ConnectionLimit": "0", "BandwidthLimit": "0"}, ssl: map[string][2][]string{}, auth: map[string]string{}}
			u.order = append(u.order, strings.ToLower(prefix))
		}
		return done()
	}
	g, err := u.lookup(r)
	if err != nil {
		return nil, err
	}
	switch method {
	case "DeleteUrlGroup":
		delete(u.groups, strings.ToLower(g.prefix))
		u.order = slices.DeleteFunc(u.order, func(k string) bool { return k == strings.ToLower(g.prefix) })
		return done()
	case "CreateUrl":
		g.urls[arg(in, "UrlSuffix")] = arg(in, "SourceFilePath")
		return done()
	case "DeleteUrl":
		delete(g.urls, arg(in, "UrlSuffix"))
		return done()
	case "CheckUrl":
		_, ok := g.urls[arg(in, "UrlSuffix")]
		return done(text("UrlExists", strconv.FormatBool(ok)))
	case "GetProperty":
		return done(text("Value", g.props[arg(in, "Property")]))
	case "SetProperty":
		g.props[arg(in, "Property")] = arg(in, "Value")
		return done()
	case "GetSslCertificate":
		s := g.ssl[arg(in, "Port")]
		return done(text("StoreName", s[0]...), text("hashBlob", s[1]...))
	case "SetSslCertificate":
		g.ssl[arg(in, "Port")] = [2][]string{{arg(in, "StoreName")}, args(in, "hashBlob")}
		return done()
	case "RemoveSslCertificate":
		delete(g.ssl, arg(in, "Port"))
		return done()
	case "GetUrlGroupAuthentication":
		enable := g.auth[arg(in, "Scheme")]
		if enable == "" {
			enable = "false"
		}
		return done(text("Enable", enable), text("Flag", "0"), text("DomainName"), text("Realm"))
	case "SetUrlGroupAuthentication":
		g.auth[arg(in, "Scheme")] = arg(in, "Enable")
		return done()
	}
	return nil, wsmantest.FaultActionNotSupported(r.Action)
}
