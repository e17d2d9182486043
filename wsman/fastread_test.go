package wsman

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// treeNode is one element as both readers see it, for comparing the trees
// themselves (depth-first order).
type treeNode struct {
	Depth              int
	Prefix, Local, NS  string
	Text               string
	HasTokens          bool
	Attrs              []treeAttr
	EmptyObject        bool
	XSIType, XSINil    string
	SelectorNameAttr   string
	FirstChildIsFault  bool
	ElementChildren    int
	FirstChildLocalTag string
}

type treeAttr struct{ Prefix, Local, NS, Value string }

// readView is everything the client reads from a reply.
type readView struct {
	Tree                             []treeNode
	RelatesTo, Action, MessageID, To string
	BodyTag, BodyNS                  string
	Instance                         *Instance
	InstanceErr                      string
	Pages                            map[string]*pageView
	Created                          *EndpointReference
	CreatedErr                       string
	Identify                         *IdentifyResponse
}

type pageView struct {
	Context string
	Items   []*Item
	Done    bool
	Err     string
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func etreeTree(el *etree.Element, depth int, out []treeNode) []treeNode {
	n := treeNode{Depth: depth, Prefix: el.Space, Local: el.Tag, NS: el.NamespaceURI(), Text: textOf(el), HasTokens: len(el.Child) > 0,
		EmptyObject: isEmptyObject(el), XSIType: xsiAttr(el, "type"), XSINil: xsiAttr(el, "nil"), SelectorNameAttr: unqualifiedAttr(el, "Name")}
	for _, a := range el.Attr {
		n.Attrs = append(n.Attrs, treeAttr{a.Space, a.Key, a.NamespaceURI(), a.Value})
	}
	kids := elementKids(el)
	n.ElementChildren = len(kids)
	if len(kids) > 0 {
		n.FirstChildLocalTag = kids[0].Tag
		n.FirstChildIsFault = kids[0].Tag == "Fault" && kids[0].NamespaceURI() == NsSOAP
	}
	out = append(out, n)
	for _, k := range kids {
		out = etreeTree(k, depth+1, out)
	}
	return out
}

func fastTree(d *fdoc, c int32, depth int, out []treeNode) []treeNode {
	nd := &d.nodes[c]
	n := treeNode{Depth: depth, Prefix: d.prefix(c), Local: d.local(c), NS: d.ns(c), Text: d.textOf(c), HasTokens: nd.flags&hasTokens != 0,
		EmptyObject: d.isEmptyObject(c), XSIType: d.xsiAttr(c, "type"), XSINil: d.xsiAttr(c, "nil"), SelectorNameAttr: d.attr(c, "Name")}
	for _, a := range d.attrsOf(c) {
		n.Attrs = append(n.Attrs, treeAttr{d.str(a.prefix), d.str(a.local), d.attrNS(c, d.str(a.prefix)), d.str(a.value)})
	}
	n.ElementChildren = d.nkids(c)
	if f := nd.first; f >= 0 {
		n.FirstChildLocalTag = d.local(f)
		n.FirstChildIsFault = d.is(f, NsSOAP, "Fault")
	}
	out = append(out, n)
	for k := nd.first; k >= 0; k = d.nodes[k].next {
		out = fastTree(d, k, depth+1, out)
	}
	return out
}

var errIsFault = errors.New("reply is a fault")

// etreeView reads b with the reference (etree) path.
func etreeView(b []byte) (*readView, error) {
	doc, err := readXML(b)
	if err != nil {
		return nil, err
	}
	v := &readView{Tree: etreeTree(doc.Root(), 0, nil)}
	rep, err := parseEnvelope(b)
	if err != nil {
		return v, err
	}
	if rep.fault() != nil {
		return v, errIsFault
	}
	v.RelatesTo = rep.headerText(NsAddressing, "RelatesTo")
	v.Action = rep.headerText(NsAddressing, "Action")
	v.MessageID = rep.headerText(NsAddressing, "MessageID")
	v.To = rep.headerText(NsAddressing, "To")
	if el := rep.bodyChild(); el != nil {
		v.BodyTag, v.BodyNS = el.Tag, el.NamespaceURI()
		in, err := ParseInstance(el)
		v.Instance, v.InstanceErr = in, errText(err)
	}
	v.Pages = map[string]*pageView{}
	for _, w := range []string{"EnumerateResponse", "PullResponse"} {
		p, err := parsePage(rep, w)
		pv := &pageView{Err: errText(err)}
		if p != nil {
			pv.Context, pv.Items, pv.Done = p.context, p.items, p.done
		}
		v.Pages[w] = pv
	}
	if rc := child(rep.body, NsTransfer, "ResourceCreated"); rc != nil {
		epr, err := parseEPR(rc)
		v.Created, v.CreatedErr = epr, errText(err)
	}
	v.Identify, _ = rep.identify()
	return v, nil
}

// fastView reads b with the fast reader; errFastFallback when it left the
// reply to etree.
//
// Both parses use documents whose tables held another reply before (see
// usedDoc), so that state left over from an earlier reply would show as a
// difference.
func fastView(b []byte) (*readView, error) {
	d, err := fastParseDoc(usedDoc(), b)
	if err != nil {
		return nil, err
	}
	v := &readView{Tree: fastTree(d, d.root, 0, nil)}
	d2, err := fastParseDoc(usedDoc(), b)
	if err != nil {
		return v, fmt.Errorf("second parse: %w", err)
	}
	rep, err := d2.replyOrRelease()
	if err != nil {
		return v, err
	}
	v.RelatesTo = rep.headerText(NsAddressing, "RelatesTo")
	v.Action = rep.headerText(NsAddressing, "Action")
	v.MessageID = rep.headerText(NsAddressing, "MessageID")
	v.To = rep.headerText(NsAddressing, "To")
	if el := rep.bodyChild(); el >= 0 {
		v.BodyTag, v.BodyNS = d.local(el), d.ns(el)
		in, err := d.parseInstance(el)
		v.Instance, v.InstanceErr = in, errText(err)
	}
	v.Pages = map[string]*pageView{}
	for _, w := range []string{"EnumerateResponse", "PullResponse"} {
		p, err := rep.parsePage(w)
		pv := &pageView{Err: errText(err)}
		if p != nil {
			pv.Context, pv.Items, pv.Done = p.context, p.items, p.done
		}
		v.Pages[w] = pv
	}
	if rc := d.child(rep.body, NsTransfer, "ResourceCreated"); rc >= 0 {
		epr, err := d.parseEPR(rc)
		v.Created, v.CreatedErr = epr, errText(err)
	}
	v.Identify, _ = rep.identify()
	return v, nil
}

// usedReply is a reply that fills every table of a document, past the
// room built into it: more namespace declarations than nsBuf and bindBuf
// hold, deeper than markBuf, decoded text and attribute values, text in
// pieces.
var usedReply = func() []byte {
	var decl, open, end strings.Builder
	for i := range 20 {
		fmt.Fprintf(&decl, ` xmlns:n%d="urn:n%d"`, i, i)
	}
	for i := range 40 {
		fmt.Fprintf(&open, `<n%d:E%d xmlns:x%d="urn:x" a="&amp;%d">t&lt;%d<!-- -->u`, i%20, i, i, i, i)
		fmt.Fprintf(&end, `</n%d:E%d>`, (39-i)%20, 39-i)
	}
	return []byte(windowsReply(ActionGetResponse, "uuid:U", `<p:C xmlns:p="urn:c"`+decl.String()+`>`+open.String()+end.String()+`</p:C>`))
}()

// usedDoc returns a document that has read usedReply and been reset.
func usedDoc() *fdoc {
	d, err := fastParseDoc(&fdoc{}, usedReply)
	if err != nil {
		panic(fmt.Sprintf("usedReply: %v", err))
	}
	if len(d.nsTab) <= len(d.nsBuf) || len(d.binds) != 0 || len(d.decoded) == 0 || len(d.pieces) == 0 || cap(d.frames) <= len(d.frameBuf) {
		panic(fmt.Sprintf("usedReply does not fill the tables: %d namespaces, %d decoded, %d pieces, %d frames",
			len(d.nsTab), len(d.decoded), len(d.pieces), cap(d.frames)))
	}
	d.reset()
	return d
}

// compareReaders reads b both ways and fails on any difference. It
// returns whether the fast reader handled the whole reply itself (false:
// it fell back, at the tree or at the envelope level).
func compareReaders(t testing.TB, b []byte) bool {
	t.Helper()
	fv, ferr := fastView(b)
	if ferr != nil && !errors.Is(ferr, errFastFallback) {
		t.Fatalf("fast reader failed with %v instead of falling back", ferr)
	}
	if fv == nil {
		return false // fell back before building a tree
	}
	ev, eerr := etreeView(b)
	if ev == nil {
		t.Fatalf("fast reader accepted a document etree refuses (%v):\n%q", eerr, b)
	}
	// reflect.DeepEqual first: it is linear, while cmp is exponential on
	// deeply nested instances; cmp only explains a difference.
	if !reflect.DeepEqual(ev.Tree, fv.Tree) {
		diff := cmp.Diff(ev.Tree, fv.Tree)
		t.Fatalf("trees differ (-etree +fast):\n%s\ninput: %q", diff, b)
	}
	if ferr != nil {
		// Fell back at the envelope level: etree must find the envelope
		// wrong or a fault.
		if eerr == nil {
			t.Fatalf("fast reader fell back on an envelope etree reads as a plain reply:\n%q", b)
		}
		return false
	}
	if eerr != nil {
		t.Fatalf("fast reader read an envelope etree refuses (%v):\n%q", eerr, b)
	}
	if !reflect.DeepEqual(ev, fv) {
		diff := cmp.Diff(ev, fv)
		t.Fatalf("readers differ (-etree +fast):\n%s\ninput: %q", diff, b)
	}
	// What the fast reader reads, its views must read the same
	// (fastview.go).
	checkViews(t, b)
	return true
}

// TestFastReaderMatchesEtreeWire compares the readers on every capture of
// real Windows traffic; only faults may go to etree.
func TestFastReaderMatchesEtreeWire(t *testing.T) {
	dir := wireDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", dir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".xml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			handled := compareReaders(t, b)
			isFault := strings.Contains(name, "fault-")
			if handled == isFault {
				t.Errorf("fast reader handled it: %v, want %v (faults go to etree, nothing else)", handled, !isFault)
			}
		})
	}
}

// TestFastReaderMatchesEtreeFixtures compares the readers on every reply
// recorded in fixtures/soap.
func TestFastReaderMatchesEtreeFixtures(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "fixtures", "soap")
	var names []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(p, "001.json") {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d recordings under %s", len(names), root)
	}
	replies := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			exs, err := transport.LoadExchanges(root, name)
			if err != nil {
				t.Fatal(err)
			}
			for i, ex := range exs {
				if ex.Response == nil || len(ex.Response.Body) == 0 {
					continue
				}
				replies++
				handled := compareReaders(t, ex.Response.Body)
				isFault := strings.Contains(string(ex.Response.Body), "Fault>")
				if handled == isFault {
					t.Errorf("exchange %d: fast reader handled it: %v, want %v", i+1, handled, !isFault)
				}
			}
		})
	}
	t.Logf("%d recorded replies compared", replies)
}

// fastCases are hand-written replies at the edges of what either reader
// does; handled says whether the fast reader must read it itself.
var fastCases = []struct {
	name    string
	body    string
	handled bool
}{
	{"get", windowsReply(ActionGetResponse, "uuid:R", instance40()), true},
	{"entities and char refs", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A>a&amp;b&lt;c&gt;d&apos;e&quot;f&#65;&#x42;&#x1F600;</p:A><p:B x="&amp;&#x9;&#10;"/></p:C>`), true},
	{"CR LF in text and attributes", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\"><p:A n=\"a\rb\r\nc\">x\r\ny\rz\r\r\n</p:A><p:B>&#xD;\r\n</p:B></p:C>"), true},
	{"CDATA and comments split text", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A>a<!-- c -->b<![CDATA[<&>]]>c<?pi x?>d</p:A><p:E><![CDATA[]]></p:E><p:F><!----></p:F><p:G/></p:C>`), true},
	{"CDATA with CR", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\"><p:A><![CDATA[a\r\nb\rc]]></p:A></p:C>"), true},
	{"xml declaration", `<?xml version="1.0" encoding="utf-8"?>` + "\n" + windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`), true},
	{"declaration version 1.1", `<?xml version="1.1"?>` + windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`), false},
	{"DTD", `<!DOCTYPE s:Envelope [<!ENTITY x "y">]>` + windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">&x;</p:C>`), false},
	{"undeclared entity", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">&nbsp;</p:C>`), false},
	{"surrogate char ref", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">&#xD800;</p:C>`), false},
	{"NUL char ref", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">&#0;</p:C>`), false},
	{"upper-case X char ref", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">&#X41;</p:C>`), false},
	{"raw ]]> in text", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">a]]>b</p:C>`), false},
	{"]]> in attribute", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" a="]]>"/>`), true},
	{"< in attribute", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" a="<"/>`), false},
	{"invalid UTF-8", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\">\xff</p:C>"), false},
	{"control character", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\">\x01</p:C>"), false},
	{"non-ASCII text", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c">Ünïcødé €😀</p:C>`), true},
	{"non-ASCII name", windowsReply(ActionGetResponse, "uuid:R", `<p:Cé xmlns:p="urn:c"/>`), false},
	{"duplicate attribute", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" a="1" a="2"/>`), false},
	{"same local name, two prefixes", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" xmlns:xsi="`+NsXSI+`" xmlns:i="`+NsXSI+`"><p:A i:nil="false" xsi:nil="true"/><p:S q:Name="x" Name="y" xmlns:q="urn:q"/></p:C>`), true},
	{"xsi declared after use", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A i:nil="true" xmlns:i="`+NsXSI+`"/></p:C>`), true},
	{"default namespace and undeclared prefix", windowsReply(ActionGetResponse, "uuid:R", `<C xmlns="urn:c"><A>1</A><q:B>2</q:B><D xmlns="">3</D></C>`), true},
	{"prefix redeclared", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A xmlns:p="urn:other"><p:X>1</p:X></p:A><p:B>2</p:B></p:C>`), true},
	{"mismatched end tag", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A></p:B></p:C>`), false},
	{"end tag with other prefix, same namespace", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" xmlns:q="urn:c"><p:A></q:A></p:C>`), false},
	{"space in end tag", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A >x</p:A  ></p:C>`), true},
	{"attributes without space between", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A a="1"b='2'/></p:C>`), true},
	{"unquoted attribute", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" a=1/>`), false},
	{"text after root", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`) + "x", false},
	{"comment after root", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`) + "<!-- bye -->\n", true},
	{"second root", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`) + "<x/>", false},
	{"truncated", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"/>`)[:200], false},
	{"empty", "", false},
	{"not SOAP", `<html><body>no</body></html>`, false},
	{"SOAP 1.1", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`, false},
	{"no body", `<s:Envelope xmlns:s="` + NsSOAP + `"><s:Header/></s:Envelope>`, false},
	{"two bodies", `<s:Envelope xmlns:s="` + NsSOAP + `"><s:Body><a/></s:Body><s:Body><b/></s:Body></s:Envelope>`, true},
	{"fault", `<s:Envelope xmlns:s="` + NsSOAP + `"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code></s:Fault></s:Body></s:Envelope>`, false},
	{"comment with --", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><!-- a -- b --></p:C>`), false},
	{"colon-led name", windowsReply(ActionGetResponse, "uuid:R", `<:C/>`), false},
	{"two colons", windowsReply(ActionGetResponse, "uuid:R", `<a:b:C/>`), false},
	// Envelope and Body are two levels.
	{"deep", windowsReply(ActionGetResponse, "uuid:R", strings.Repeat("<a>", maxDepth-2)+strings.Repeat("</a>", maxDepth-2)), true},
	{"too deep", windowsReply(ActionGetResponse, "uuid:R", strings.Repeat("<a>", maxDepth-1)+strings.Repeat("</a>", maxDepth-1)), false},
	{"many attributes", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\""+manyAttrs(maxAttrs-1)+"/>"), true},
	{"too many attributes", windowsReply(ActionGetResponse, "uuid:R", "<p:C xmlns:p=\"urn:c\""+manyAttrs(maxAttrs)+"/>"), false},
	{"embedded objects and references", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" xmlns:xsi="`+NsXSI+`" xmlns:a="`+NsAddressing+`" xmlns:w="`+NsWSMan+`" xmlns:cim="`+NsCIM+`">`+
		`<p:Files><q:F xmlns:q="urn:f" xsi:type="q:F_Type"><q:N>1</q:N></q:F></p:Files>`+
		`<p:Files xsi:type="p:G_Type"><q:A xmlns:q="urn:g">x</q:A><q:B xmlns:q="urn:g">y</q:B></p:Files>`+
		`<p:E><q:Empty xmlns:q="urn:e"/></p:E>`+
		`<p:Ref><a:Address>http://h/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>urn:r</w:ResourceURI><w:SelectorSet><w:Selector Name="K">v&amp;</w:Selector><w:Selector Name="E"><a:EndpointReference><a:Address>x</a:Address><a:ReferenceParameters><w:ResourceURI>urn:s</w:ResourceURI></a:ReferenceParameters></a:EndpointReference></w:Selector></w:SelectorSet></a:ReferenceParameters></p:Ref>`+
		`<p:T><cim:Datetime> 2026-01-01T00:00:00Z </cim:Datetime></p:T><p:I><Interval>PT1S</Interval></p:I><cim:Location/><p:Arr>1</p:Arr><p:X>x</p:X><p:Arr>2</p:Arr>`+
		`</p:C>`), true},
	{"selector without name", windowsReply(ActionCreateResponse, "uuid:R", `<x:ResourceCreated><a:Address>x</a:Address><a:ReferenceParameters><w:ResourceURI>u</w:ResourceURI><w:SelectorSet><w:Selector>v</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>`), true},
	{"pull page", windowsReply(ActionPullResponse, "uuid:R", `<n:PullResponse><n:EnumerationContext> uuid:C </n:EnumerationContext><n:Items>`+svc("a")+`<w:Item>`+svc("b")+`<a:EndpointReference><a:Address>x</a:Address><a:ReferenceParameters><w:ResourceURI>u</w:ResourceURI></a:ReferenceParameters></a:EndpointReference></w:Item><a:EndpointReference><a:Address>y</a:Address></a:EndpointReference></n:Items></n:PullResponse>`), true},
	{"optimized enumerate", windowsReply(ActionEnumerateResp, "uuid:R", `<n:EnumerateResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><w:Items>`+svc("a")+`</w:Items><w:EndOfSequence/></n:EnumerateResponse>`), true},
	{"fragment", windowsReply(ActionPullResponse, "uuid:R", `<n:PullResponse><n:Items><w:XmlFragment><Name>a</Name><Caption>b</Caption></w:XmlFragment></n:Items><n:EndOfSequence/></n:PullResponse>`), true},
	{"long name", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:`+strings.Repeat("N", maxNameLen-2)+`/></p:C>`), true},
	{"too long name", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:`+strings.Repeat("N", maxNameLen-1)+`/></p:C>`), false},
	{"long attribute values again", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" xmlns:xsi="`+NsXSI+`">`+
		`<p:A a="http://example.com/a&amp;b" b="http://example.com/a&#38;b" c="http://example.com/plain/value"/>`+
		`<p:B a="http://example.com/a&amp;b" b="http://example.com/plain/value" xsi:type="http://example.com/plain/value"/>`+
		`<p:D xmlns:q="urn:c" xmlns:r="urn:c"><q:E xmlns:p="urn:other"><p:F xsi:nil="true"/></q:E><r:G/></p:D></p:C>`), true},
	{"arrays with look-alike names", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c" xmlns:xsi="`+NsXSI+`"><p:Ab>1</p:Ab><p:Bb>2</p:Bb><p:Ab xsi:nil="true"/><p:Ab>3</p:Ab><p:A>4</p:A><p:Bb>5</p:Bb><p:Cb/></p:C>`), true},
	{"long attribute value, then broken", windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A a="http://example.com/a&amp;b"/><p:B a="http://example.com/a&b"/></p:C>`), false},
	{"indented", strings.ReplaceAll(windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A>1</p:A></p:C>`), "><", ">\n  <"), true},
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ` a%d="%d"`, i, i)
	}
	return b.String()
}

func TestFastReaderCases(t *testing.T) {
	for _, c := range fastCases {
		t.Run(c.name, func(t *testing.T) {
			if got := compareReaders(t, []byte(c.body)); got != c.handled {
				t.Errorf("fast reader handled it: %v, want %v", got, c.handled)
			}
		})
	}
}

// TestFastReaderLeavesInputAlone: the body is not modified, and what is
// read from it refers to the body's bytes instead of copies (fastParse
// relies on transport.Response's contract that a body is the caller's
// alone), also after the document's tables were released and reused.
func TestFastReaderLeavesInputAlone(t *testing.T) {
	body := []byte(windowsReply(ActionGetResponse, "uuid:R", `<p:C xmlns:p="urn:c"><p:A>hello</p:A><p:B>a&amp;b</p:B></p:C>`))
	orig := string(body)
	rep, err := parseFastReply(body)
	if err != nil {
		t.Fatal(err)
	}
	in, err := rep.d.parseInstance(rep.bodyChild())
	if err != nil {
		t.Fatal(err)
	}
	rep.d.release()
	// Reuse the released tables for another reply.
	other, err := parseFastReply([]byte(windowsReply(ActionGetResponse, "uuid:S", `<q:D xmlns:q="urn:d"><q:A>other</q:A><q:B>x&lt;y</q:B></q:D>`)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.d.parseInstance(other.bodyChild()); err != nil {
		t.Fatal(err)
	}
	if string(body) != orig {
		t.Errorf("body changed while reading it:\n%s\nwas\n%s", body, orig)
	}
	a, _ := in.String("A")
	if b, _ := in.String("B"); a != "hello" || b != "a&b" || in.ClassName != "C" || in.ResourceURI != "urn:c" {
		t.Fatalf("read A=%q B=%q class %q in %q, want hello, a&b, C in urn:c", a, b, in.ClassName, in.ResourceURI)
	}
	k := strings.Index(orig, ">hello<") + 1
	if unsafe.StringData(a) != &body[k] {
		t.Errorf("A is a copy; want it to refer to the body")
	}
}

func FuzzFastReaderMatchesEtree(f *testing.F) {
	addWire(f)
	for _, c := range fastCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		compareReaders(t, b)
	})
}

func BenchmarkParseGetFast(b *testing.B) {
	data := []byte(windowsReply(ActionGetResponse, "uuid:00000000-0000-4000-8000-000000000001", instance40()))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := parseFastReply(data)
		if err != nil {
			b.Fatal(err)
		}
		in, err := rep.d.parseInstance(rep.bodyChild())
		if err != nil || len(in.Props) != 40 {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePull50Fast(b *testing.B) {
	data := pull50Reply()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := parseFastReply(data)
		if err != nil {
			b.Fatal(err)
		}
		p, err := rep.parsePage("PullResponse")
		if err != nil || len(p.items) != 50 {
			b.Fatal(err)
		}
		rep.d.release() // as the client does once it has the page
	}
}

// bitsJobItem is a BitsClientJob as the simulator renders it (about
// 1.5 KB, like a real one).
const bitsJobItem = `<p:BitsClientJob xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xsi:type="p:BitsClientJob_Type"><p:BytesTotal>18446744073709551615</p:BytesTotal><p:BytesTransferred>0</p:BytesTransferred><p:Description>Monthly rollup staged by bitsremote</p:Description><p:DisplayName>fleet update %04d</p:DisplayName><p:Files><p:BitsClientFile xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:BitsClientFile_Type"><p:BytesTotal>18446744073709551615</p:BytesTotal><p:BytesTransferred>0</p:BytesTransferred><p:Completed>false</p:Completed><p:LocalFile>C:\ProgramData\Updates\kb%07d-x64.cab</p:LocalFile><p:RemoteUrl>https://updates.example.com/packages/kb%07d-x64.cab</p:RemoteUrl></p:BitsClientFile></p:Files><p:FilesTotal>1</p:FilesTotal><p:FilesTransferred>0</p:FilesTransferred><p:JobCompletionTime>0</p:JobCompletionTime><p:JobCreationTime>134397270000000000</p:JobCreationTime><p:JobId>{A803C629-C45C-4DC8-83C7-8CCF861B2DFF}</p:JobId><p:JobLastModificationTime>134397270000000000</p:JobLastModificationTime><p:MinimumRetryDelay>600</p:MinimumRetryDelay><p:NoProgressTimeout>1209600</p:NoProgressTimeout><p:Owner>NT AUTHORITY\NETWORK SERVICE</p:Owner><p:Priority>2</p:Priority><p:State>3</p:State><p:TransientErrorCount>0</p:TransientErrorCount></p:BitsClientJob>`

func bitsPage(n int) []byte {
	var items strings.Builder
	for i := range n {
		fmt.Fprintf(&items, bitsJobItem, i, 5000000+i, 5000000+i)
	}
	return []byte(windowsReply(ActionPullResponse, "uuid:R", `<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items>`+items.String()+`</n:Items></n:PullResponse>`))
}

func TestFastReaderBitsPage(t *testing.T) {
	if !compareReaders(t, bitsPage(3)) {
		t.Error("fast reader did not handle a page of BITS jobs")
	}
}

// BenchmarkParseBitsPage100 reads a PullResponse of 100 BITS jobs
// (about 150 KB, one MaxEnvelopeSize) with the fast reader, and releases
// the document's tables for the next page as the client does.
func BenchmarkParseBitsPage100(b *testing.B) {
	data := bitsPage(100)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rep, err := parseFastReply(data)
		if err != nil {
			b.Fatal(err)
		}
		p, err := rep.parsePage("PullResponse")
		if err != nil || len(p.items) != 100 {
			b.Fatal(err)
		}
		rep.d.release() // as the client does once it has the page
	}
}

// reportCPU reports the process CPU time (user and system, GC included)
// per iteration as cpu-µs/op; on a shared, loaded machine it is steadier
// than ns/op, which counts time spent waiting for a CPU. Use as
// defer reportCPU(b)() before the loop.
func reportCPU(b *testing.B) func() {
	now := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatalf("getrusage: %v", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := now()
	return func() {
		b.ReportMetric(float64(now()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}
