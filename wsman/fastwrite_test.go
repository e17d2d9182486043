package wsman

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"
)

// trickyPieces are the fragments random strings are made of: everything
// either escaper treats specially.
var trickyPieces = []string{
	"a", "Z", "0", " ", "&", "<", ">", `"`, "'", "\r", "\n", "\r\n", "\t",
	"\x00", "\x01", "\x1f", "\x7f", "é", "€", "😀", "\uFFFD", "\uFFFE", "\uFFFF",
	"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "]]>", "&amp;", "uuid:X", "{9D5C}",
}

func randString(r *rand.Rand) string {
	n := r.IntN(6)
	var b strings.Builder
	for range n {
		b.WriteString(trickyPieces[r.IntN(len(trickyPieces))])
	}
	return b.String()
}

func randSelectors(r *rand.Rand, depth int) []Selector {
	n := r.IntN(3)
	sels := make([]Selector, n)
	for i := range sels {
		sels[i] = Selector{Name: randString(r), Value: randString(r)}
		if depth < 2 && r.IntN(4) == 0 {
			sels[i].EPR = &EndpointReference{Address: randString(r), ResourceURI: randString(r), Selectors: randSelectors(r, depth+1)}
		}
	}
	return sels
}

func randOptions(r *rand.Rand) *Options {
	if r.IntN(5) == 0 {
		return nil
	}
	o := &Options{Selectors: randSelectors(r, 0)}
	for range r.IntN(3) {
		opt := Option{Name: randString(r), Value: randString(r)}
		if r.IntN(2) == 0 {
			opt.Type = randString(r)
		}
		o.OptionSet = append(o.OptionSet, opt)
	}
	return o
}

func randClient(r *rand.Rand) *Client {
	c := NewClient(randString(r), nil)
	if r.IntN(2) == 0 {
		c.Locale = randString(r)
	}
	if r.IntN(2) == 0 {
		c.SessionID = randString(r)
	}
	c.MaxEnvelopeSize = r.IntN(3) * 51200
	c.OperationTimeout = time.Duration(r.IntN(3)) * 1500 * time.Millisecond
	return c
}

// TestAppendEnvelopeMatchesEtree renders random requests both ways.
func TestAppendEnvelopeMatchesEtree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		c := randClient(r)
		req := &request{action: randString(r), resourceURI: randString(r), messageID: randString(r), opts: randOptions(r)}
		var extra []string
		if r.IntN(2) == 0 {
			extra = []string{"n", NsEnumeration}
		}
		if r.IntN(3) == 0 {
			in := &Instance{ClassName: "C", ResourceURI: randString(r)}
			in.Set("P", randString(r))
			in.SetNil("Q")
			req.body = in.Element()
		}
		want := string(render(c.envelope(req, extra...)))
		// envelope attached the body to its document; detach a fresh copy.
		if req.body != nil {
			req.body = req.body.Copy()
		}
		got := string(c.appendEnvelope(nil, req, nil, extra...))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("case %d: appendEnvelope differs from etree (-etree +fast):\n%s", i, diff)
		}
	}
}

// TestAppendBodiesMatchEtree renders the enumeration bodies both ways.
func TestAppendBodiesMatchEtree(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	renderEl := func(el *etree.Element) string {
		doc := etree.NewDocument()
		doc.AddChild(el)
		return string(render(doc))
	}
	for i := range 2000 {
		o := &EnumerateOptions{
			Optimize:    r.IntN(2) == 0,
			MaxElements: r.IntN(3) * 16000,
			Mode:        EnumerationMode(r.IntN(4)),
		}
		switch r.IntN(3) {
		case 0:
			o.WQL = randString(r)
		case 1:
			o.SelectorFilter = randSelectors(r, 0)
		}
		want := renderEl((&enumeration{opts: o}).enumerateBody())
		if got := string(appendEnumerateBody(nil, o)); got != want {
			t.Fatalf("case %d: enumerate body\n got %s\nwant %s", i, got, want)
		}

		ctx, maxEl := randString(r), r.IntN(3)*100
		pull := etree.NewElement("n:Pull")
		pull.CreateElement("n:EnumerationContext").SetText(ctx)
		if maxEl > 0 {
			pull.CreateElement("n:MaxElements").SetText(strconv.Itoa(maxEl))
		}
		if got, want := string(appendPullBody(nil, ctx, maxEl)), renderEl(pull); got != want {
			t.Fatalf("case %d: pull body\n got %s\nwant %s", i, got, want)
		}
		rel := etree.NewElement("n:Release")
		rel.CreateElement("n:EnumerationContext").SetText(ctx)
		if got, want := string(appendReleaseBody(nil, ctx)), renderEl(rel); got != want {
			t.Fatalf("case %d: release body\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestIdentifyXMLMatchesEtree(t *testing.T) {
	if got, want := identifyXML, string(render(identifyEnvelope())); got != want {
		t.Errorf("identifyXML\n got %s\nwant %s", got, want)
	}
}

// TestAppendEscaped pins the escaping of each special character.
func TestAppendEscaped(t *testing.T) {
	cases := []struct {
		in         string
		text, attr string
	}{
		{"plain", "plain", "plain"},
		{`&<>"'`, `&amp;&lt;&gt;"'`, `&amp;&lt;>&quot;'`},
		{"a\tb\nc\rd", "a\tb\nc&#xD;d", "a&#x9;b&#xA;c&#xD;d"},
		{"\x00\x1f\x7f", "\uFFFD\uFFFD\x7f", "\uFFFD\uFFFD\x7f"},
		{"\xffé\xc3", "\uFFFDé\uFFFD", "\uFFFDé\uFFFD"},
		{"\uFFFE\uFFFD", "\uFFFD\uFFFD", "\uFFFD\uFFFD"},
	}
	for _, c := range cases {
		t.Run(strconv.Quote(c.in), func(t *testing.T) {
			if got := string(appendEscaped(nil, c.in, escText)); got != c.text {
				t.Errorf("text: got %q, want %q", got, c.text)
			}
			if got := string(appendEscaped(nil, c.in, escAttr)); got != c.attr {
				t.Errorf("attr: got %q, want %q", got, c.attr)
			}
		})
	}
}

func BenchmarkBuildGetFast(b *testing.B) {
	c := benchClient(nil)
	opts := &Options{Selectors: []Selector{{Name: "JobId", Value: "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"}}}
	b.ReportAllocs()
	for b.Loop() {
		r := &request{action: ActionGet, resourceURI: bitsJobURI, messageID: c.messageID(), opts: opts}
		_ = c.appendEnvelope(make([]byte, 0, 2048), r, nil)
	}
}

func randInstance(r *rand.Rand, depth int) *Instance {
	in := &Instance{ClassName: "C" + strconv.Itoa(r.IntN(3)), ResourceURI: randString(r), Fragment: r.IntN(6) == 0}
	if r.IntN(2) == 0 {
		in.TypeName = randString(r)
	}
	for range r.IntN(6) {
		name := []string{"A", "B", "Files", "x.y-z", "_n"}[r.IntN(5)]
		var vals []Value
		for range r.IntN(3) + 1 {
			v := Value{Kind: ValueKind(r.IntN(7)), Text: randString(r)}
			switch v.Kind {
			case KindObject:
				if depth < 2 && r.IntN(3) > 0 {
					v.Object = randInstance(r, depth+1)
				}
			case KindReference:
				if r.IntN(3) > 0 {
					v.Ref = &EndpointReference{Address: randString(r), ResourceURI: randString(r), Selectors: randSelectors(r, 1)}
				}
			}
			vals = append(vals, v)
		}
		in.Props = append(in.Props, Property{Name: name, Values: vals})
	}
	return in
}

// TestAppendInstanceMatchesEtree renders random instances (every kind of
// value, nested objects, references, fragments, tricky text) both ways.
func TestAppendInstanceMatchesEtree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		in := randInstance(r, 0)
		doc := etree.NewDocument()
		doc.AddChild(in.Element())
		want := string(render(doc))
		if got := string(appendInstance(nil, in)); got != want {
			t.Fatalf("case %d: appendInstance differs from etree:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestAppendDurationIsFormatDuration: the envelope's OperationTimeout is
// written exactly as FormatDuration writes it.
func TestAppendDurationIsFormatDuration(t *testing.T) {
	for _, d := range []time.Duration{0, 1, time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond, 99 * time.Millisecond,
		100 * time.Millisecond, 999 * time.Millisecond, time.Second, DefaultOperationTimeout, 90*time.Second + 5*time.Millisecond,
		-time.Millisecond, -1500 * time.Millisecond, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, -999999 * time.Microsecond} {
		if got, want := string(appendDuration([]byte("x"), d)), "x"+FormatDuration(d); got != want {
			t.Errorf("appendDuration(%d) = %q, want %q", int64(d), got, want)
		}
	}
}
