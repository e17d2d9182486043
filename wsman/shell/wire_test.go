package shell_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/shell"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// readWire reads a real capture from shared/wire next to the repository,
// without its source comment, or skips the test when it is absent.
func readWire(t *testing.T, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "wire", name)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("real capture not found at %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(b, []byte("-->")); bytes.HasPrefix(b, []byte("<!--")) && i > 0 {
		b = b[i+3:]
	}
	return bytes.TrimSpace(b)
}

var nsNames = map[string]string{
	wsman.NsSOAP: "s", wsman.NsAddressing: "a", wsman.NsWSMan: "w", wsman.NsWSMV: "p", wsman.NsShell: "rsp",
}

// shapeOf lists the elements of an envelope as depth/ns:local[attributes],
// naming namespaces by URI (our fixed short names), not by the sender's
// prefixes, which differ between clients. Attributes in the SOAP
// namespace are marked s:; namespace declarations are left out.
func shapeOf(t *testing.T, doc []byte) []string {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	var out []string
	var walk func(e *etree.Element, depth int)
	walk = func(e *etree.Element, depth int) {
		var attrs []string
		for _, a := range e.Attr {
			if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
				continue
			}
			k := a.Key
			if a.Space != "" {
				k = nsNames[a.NamespaceURI()] + ":" + a.Key
				if a.Space == "xml" {
					k = "xml:" + a.Key
				}
			}
			attrs = append(attrs, k)
		}
		slices.Sort(attrs)
		out = append(out, strings.Repeat(" ", depth)+nsNames[e.NamespaceURI()]+":"+e.Tag+"["+strings.Join(attrs, " ")+"]")
		// Header order is free (DSP0226); compare headers as a set.
		kids := e.ChildElements()
		var lines [][]string
		for _, c := range kids {
			before := len(out)
			walk(c, depth+1)
			lines = append(lines, slices.Clone(out[before:]))
			out = out[:before]
		}
		if e.Tag == "Header" {
			slices.SortFunc(lines, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		}
		for _, l := range lines {
			out = append(out, l...)
		}
	}
	walk(d.Root(), 0)
	return out
}

// recorder keeps the request bodies sent through it, by Action.
type recorder struct {
	next transport.Transport
	mu   sync.Mutex
	got  map[string][]byte
}

func (r *recorder) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(req.Body); err == nil {
		if a := d.FindElement("//Header/Action"); a != nil {
			r.mu.Lock()
			r.got[a.Text()] = slices.Clone(req.Body)
			r.mu.Unlock()
		}
	}
	return r.next.RoundTrip(ctx, req)
}

// TestRequestShapes compares the envelopes Run sends with the real
// captures of pypsrp's WinRS Create and Delete (Windows accepted those),
// and pins the shapes of Command, Receive and Signal, for which no
// capture exists, to MS-WSMV 3.1.4.11-3.1.4.14.
func TestRequestShapes(t *testing.T) {
	h := newHost(t, func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int { return 0 })
	rec := &recorder{next: h.c.Transport, got: map[string][]byte{}}
	h.c.Transport = rec
	if _, _, _, err := shell.Run(context.Background(), h.c, "ver"); err != nil {
		t.Fatal(err)
	}
	// Every header of ours, in set order. masterzen writes mustUnderstand
	// without the SOAP namespace (spec/go-deps.md §1.5): Windows ignores an
	// unqualified attribute, so these headers are simply not marked.
	selector := []string{" w:SelectorSet[]", "  w:Selector[Name]"}
	header := func(extra ...[]string) []string {
		lines := [][]string{{" a:Action[mustUnderstand]"}, {" a:MessageID[]"}, {" a:ReplyTo[]", "  a:Address[mustUnderstand]"}, {" a:To[]"},
			{" p:DataLocale[mustUnderstand xml:lang]"}, {" w:Locale[mustUnderstand xml:lang]"}, {" w:MaxEnvelopeSize[mustUnderstand]"},
			{" w:OperationTimeout[]"}, {" w:ResourceURI[mustUnderstand]"}}
		lines = append(lines, extra...)
		slices.SortFunc(lines, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		out := []string{"s:Envelope[]", " s:Header[]"}
		for _, l := range lines {
			for _, s := range l {
				out = append(out, " "+s)
			}
		}
		return out
	}
	options := func(n int) []string {
		o := []string{" w:OptionSet[]"}
		for range n {
			o = append(o, "  w:Option[Name]")
		}
		return o
	}
	tests := []struct {
		action string
		want   []string
	}{
		{wsman.ActionCreate, append(header(options(2)),
			" s:Body[]", "  rsp:Shell[]", "   rsp:InputStreams[]", "   rsp:OutputStreams[]")},
		{wsmantest.ActionShellCommand, append(header(selector, options(2)),
			" s:Body[]", "  rsp:CommandLine[]", "   rsp:Command[]")},
		{wsmantest.ActionShellReceive, append(header(selector),
			" s:Body[]", "  rsp:Receive[]", "   rsp:DesiredStream[CommandId]")},
		{wsmantest.ActionShellSignal, append(header(selector),
			" s:Body[]", "  rsp:Signal[CommandId]", "   rsp:Code[]")},
		{wsman.ActionDelete, append(header(selector), " s:Body[]")},
	}
	for _, tt := range tests {
		t.Run(tt.action[strings.LastIndexByte(tt.action, '/')+1:], func(t *testing.T) {
			body := rec.got[tt.action]
			if body == nil {
				t.Fatalf("not sent; sent %v", slices.Collect(func(yield func(string) bool) {
					for k := range rec.got {
						if !yield(k) {
							return
						}
					}
				}))
			}
			if diff := cmp.Diff(tt.want, shapeOf(t, body)); diff != "" {
				t.Errorf("(-want +sent):\n%s\nsent: %s", diff, body)
			}
		})
	}

	// Against the captures: the same headers and body, apart from what is
	// listed here.
	captures := []struct {
		action, file          string
		onlyWindows, onlyOurs []string
	}{
		{wsman.ActionCreate, "wsman-create-request_shell.xml",
			// pypsrp sends a SessionId; masterzen asks for no profile and UTF-8 (WINRS_CODEPAGE 65001).
			[]string{"  p:SessionId[mustUnderstand]"}, []string{"  w:OptionSet[]", "   w:Option[Name]", "   w:Option[Name]"}},
		{wsman.ActionDelete, "wsman-delete-request.xml", []string{"  p:SessionId[mustUnderstand]"}, nil},
	}
	for _, c := range captures {
		t.Run("capture "+c.file, func(t *testing.T) {
			// Normalise the SOAP-qualified mustUnderstand of the capture to
			// masterzen's unqualified one, the one known difference above.
			win := shapeOf(t, readWire(t, c.file))
			for i := range win {
				win[i] = strings.ReplaceAll(win[i], "s:mustUnderstand", "mustUnderstand")
			}
			ours := shapeOf(t, rec.got[c.action])
			onlyWin, onlyOurs := difference(win, ours), difference(ours, win)
			if diff := cmp.Diff(c.onlyWindows, onlyWin); diff != "" {
				t.Errorf("only in the capture (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.onlyOurs, onlyOurs); diff != "" {
				t.Errorf("only in ours (-want +got):\n%s", diff)
			}
		})
	}
}

// difference returns the lines of a not matched by a line of b (multiset).
func difference(a, b []string) []string {
	left := slices.Clone(b)
	var out []string
	for _, l := range a {
		if i := slices.Index(left, l); i >= 0 {
			left = slices.Delete(left, i, i+1)
			continue
		}
		out = append(out, l)
	}
	return out
}
