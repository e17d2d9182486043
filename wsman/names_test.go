package wsman

import (
	"context"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// TestBadNamesRefused: names that would break or change the envelope are
// refused before anything is sent, naming the culprit.
func TestBadNamesRefused(t *testing.T) {
	c := NewClient(testEndpoint, transport.Func(func(context.Context, *transport.Request) (*transport.Response, error) {
		t.Fatal("a request was sent")
		return nil, nil
	}))
	ctx := context.Background()
	in := func(names ...string) *Instance {
		i := NewInstance(wmiSvc)
		for _, n := range names {
			i.Set(n, "v")
		}
		return i
	}
	sel := func(n string) Options { return Options{Selectors: []Selector{{Name: n, Value: "v"}}} }
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"property with a space", func() error { _, err := c.Put(ctx, wmiSvc, Options{}, in("A", "x xmlns:p='evil'")); return err },
			`put ` + wmiSvc + ` on win1.example:5985: invalid property name "x xmlns:p='evil'": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"property with a colon", func() error { _, err := c.Invoke(ctx, wmiSvc, "M", Options{}, in("a:b")); return err },
			`invoke M ` + wmiSvc + ` on win1.example:5985: invalid property name "a:b": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"property starting with a digit", func() error { _, err := c.Create(ctx, wmiSvc, Options{}, in("1x")); return err },
			`create ` + wmiSvc + ` on win1.example:5985: invalid property name "1x": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"empty property", func() error { _, err := c.Put(ctx, wmiSvc, Options{}, in("")); return err },
			`put ` + wmiSvc + ` on win1.example:5985: invalid property name "": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"selector with a control character", func() error { _, err := c.Get(ctx, wmiSvc, sel("Na\x01me")); return err },
			`get ` + wmiSvc + ` on win1.example:5985: invalid selector name "Na\x01me": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"selector with a quote", func() error { return c.Delete(ctx, wmiSvc, sel(`N"`)) },
			`delete ` + wmiSvc + ` on win1.example:5985: invalid selector name "N\"": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"option name", func() error {
			_, err := c.Get(ctx, wmiSvc, Options{OptionSet: []Option{{Name: "a b", Value: "v"}}})
			return err
		}, `get ` + wmiSvc + ` on win1.example:5985: invalid option name "a b": want a letter or '_', then letters, digits, '_', '.' or '-'`},
		{"selector filter", func() error {
			for _, err := range c.Enumerate(ctx, wmiSvc, EnumerateOptions{SelectorFilter: []Selector{{Name: "<x>"}}}) {
				return err
			}
			return nil
		}, `enumerate ` + wmiSvc + ` on win1.example:5985: invalid selector filter name "<x>": want a letter or '_', then letters, digits, '_', '.' or '-'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
	for _, ok := range []string{"Name", "_x", "__CLASS", "a.b-c_9", "Größe"} {
		if !validName(ok) {
			t.Errorf("validName(%q) = false", ok)
		}
	}
}

// FuzzRequestNamesAndValues builds Put and Get requests from arbitrary
// selector and property names and values (what -s and -v flags carry):
// either the name is refused, or the envelope parses back with exactly
// that selector and property, values made XML-safe, and nothing else.
func FuzzRequestNamesAndValues(f *testing.F) {
	f.Add("Name", "Spooler", "StartMode", "Auto")
	f.Add("x", "</w:Selector><w:Selector Name='y'>", "P", "]]><p:Q>1</p:Q>")
	f.Add("a b", "v", "c:d", "\x00\uFFFE\xff")
	f.Fuzz(func(t *testing.T, selName, selValue, propName, propValue string) {
		var sent []byte
		c := NewClient(testEndpoint, transport.Func(func(_ context.Context, req *transport.Request) (*transport.Response, error) {
			sent = req.Body
			return &transport.Response{StatusCode: 500}, nil
		}))
		c.Retry = NoRetry
		c.newID = func() string { return "uuid:FUZZ" }
		in := NewInstance(wmiSvc)
		in.Set(propName, propValue)
		opts := Options{Selectors: []Selector{{Name: selName, Value: selValue}}}
		_, err := c.Put(context.Background(), wmiSvc, opts, in)
		if sent == nil {
			if err == nil || !strings.Contains(err.Error(), "invalid ") {
				t.Fatalf("nothing sent, err = %v", err)
			}
			return
		}
		rep, err := parseEnvelope(sent)
		if err != nil {
			t.Fatalf("our own envelope does not parse: %v\n%s", err, sent)
		}
		ss := child(rep.header, NsWSMan, "SelectorSet")
		sels := elementKids(ss)
		if len(sels) != 1 || sels[0].SelectAttrValue("Name", "") != selName || textOf(sels[0]) != xmlSafe(selValue) {
			t.Fatalf("selectors %v in\n%s", sels, sent)
		}
		body := rep.bodyChild()
		props := elementKids(body)
		if len(props) != 1 || props[0].Tag != propName || textOf(props[0]) != xmlSafe(propValue) {
			t.Fatalf("properties in\n%s", sent)
		}
	})
}
