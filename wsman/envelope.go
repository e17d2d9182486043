package wsman

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// maxDepth bounds the nesting of a reply. Real replies nest about 12 deep
// (fault details with embedded WMI errors); 256 leaves room for deep
// embedded objects while refusing pathological input.
const maxDepth = 256

// request is one envelope to build: the addressing headers and a body.
type request struct {
	action      string
	resourceURI string
	messageID   string
	opts        *Options
	// body, when set, is added as the only child of s:Body.
	body *etree.Element
	// bodyXML, when body is nil, is the rendered child of s:Body.
	bodyXML []byte
}

// idRandom hands out crypto/rand bytes read 4 KiB at a time: a MessageID
// needs 16 per request, and a getrandom system call for each was 3% of a
// Get where the vDSO does not provide it.
var idRandom struct {
	sync.Mutex
	buf [4096]byte
	n   int // bytes of buf already handed out
}

func init() { idRandom.n = len(idRandom.buf) }

// randomID fills b (at most 4 KiB) with random bytes.
func randomID(b []byte) {
	idRandom.Lock()
	defer idRandom.Unlock()
	if idRandom.n+len(b) > len(idRandom.buf) {
		_, _ = rand.Read(idRandom.buf[:]) // crypto/rand never fails (Go 1.24+)
		idRandom.n = 0
	}
	copy(b, idRandom.buf[idRandom.n:])
	idRandom.n += len(b)
}

// newMessageID returns "uuid:" + an upper-case random UUID, the form
// Windows itself uses.
func newMessageID() string {
	// uuid.NewString and strings.ToUpper made three allocations per
	// request; this is the same text ("uuid:" and the upper-case
	// 8-4-4-4-12 form) in one.
	var u [16]byte
	randomID(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789ABCDEF"
	var b [41]byte
	copy(b[:], "uuid:")
	j := 5
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0x0f]
		j += 2
	}
	return string(b[:])
}

// envelope renders r with the client's defaults as wsman-wire.md §1.3
// describes: prefixes s, a, w, p (and n or x when the body needs them).
func (c *Client) envelope(r *request, extraNS ...string) *etree.Document {
	doc := etree.NewDocument()
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xmlns:s", NsSOAP)
	env.CreateAttr("xmlns:a", NsAddressing)
	env.CreateAttr("xmlns:w", NsWSMan)
	env.CreateAttr("xmlns:p", NsWSMV)
	for i := 0; i+1 < len(extraNS); i += 2 {
		env.CreateAttr("xmlns:"+extraNS[i], extraNS[i+1])
	}
	h := env.CreateElement("s:Header")

	mu := func(el *etree.Element, v string) *etree.Element {
		el.CreateAttr("s:mustUnderstand", v)
		return el
	}
	mu(h.CreateElement("a:Action"), "true").SetText(r.action)
	locale := c.Locale
	if locale == "" {
		locale = DefaultLocale
	}
	mu(h.CreateElement("p:DataLocale"), "false").CreateAttr("xml:lang", locale)
	mu(h.CreateElement("w:Locale"), "false").CreateAttr("xml:lang", locale)
	size := c.MaxEnvelopeSize
	if size <= 0 {
		size = DefaultMaxEnvelopeSize
	}
	mu(h.CreateElement("w:MaxEnvelopeSize"), "true").SetText(strconv.Itoa(size))
	h.CreateElement("a:MessageID").SetText(r.messageID)
	timeout := c.OperationTimeout
	if timeout <= 0 {
		// A negative timeout is a fault on Windows (PT-1S ->
		// InvalidMessageInformationHeader); never send one.
		timeout = DefaultOperationTimeout
	}
	h.CreateElement("w:OperationTimeout").SetText(FormatDuration(timeout))
	mu(h.CreateElement("a:ReplyTo").CreateElement("a:Address"), "true").SetText(AddressAnonymous)
	mu(h.CreateElement("w:ResourceURI"), "true").SetText(r.resourceURI)
	if c.SessionID != "" {
		mu(h.CreateElement("p:SessionId"), "false").SetText(c.SessionID)
	}
	h.CreateElement("a:To").SetText(c.Endpoint)
	if r.opts != nil {
		if len(r.opts.Selectors) > 0 {
			writeSelectorSet(h, r.opts.Selectors)
		}
		if len(r.opts.OptionSet) > 0 {
			os := h.CreateElement("w:OptionSet")
			for _, o := range r.opts.OptionSet {
				oe := os.CreateElement("w:Option")
				oe.CreateAttr("Name", o.Name)
				if o.Type != "" {
					oe.CreateAttr("Type", o.Type)
				}
				oe.SetText(xmlSafe(o.Value))
			}
		}
	}
	b := env.CreateElement("s:Body")
	if r.body != nil {
		b.AddChild(r.body)
	}
	return doc
}

// identifyEnvelope is the unauthenticated Identify request: no addressing
// headers at all (wsman-wire.md §1.6).
func identifyEnvelope() *etree.Document {
	doc := etree.NewDocument()
	env := doc.CreateElement("s:Envelope")
	env.CreateAttr("xmlns:s", NsSOAP)
	env.CreateAttr("xmlns:wsmid", NsIdentity)
	env.CreateElement("s:Header")
	env.CreateElement("s:Body").CreateElement("wsmid:Identify")
	return doc
}

// maxAttrs bounds the attributes (namespace declarations included) of one
// element. Windows writes at most a dozen; etree resolves every namespace
// by scanning the attributes of each ancestor, so an element with
// hundreds of thousands of them would make each lookup below it slow.
const maxAttrs = 256

// readXML parses untrusted XML with depth and attribute limits and refuses
// DTDs, so no entity can be declared, let alone expanded. Its size is
// bounded before it gets here (transport limit, MaxEnvelopeSize).
func readXML(b []byte) (*etree.Document, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.MaxDepth = maxDepth
	if err := doc.ReadFromBytes(b); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return nil, fmt.Errorf("elements nest deeper than the limit of %d: %w", maxDepth, err)
		}
		return nil, err
	}
	if doc.Root() == nil {
		return nil, errors.New("no root element")
	}
	if err := checkTree(&doc.Element); err != nil {
		return nil, err
	}
	return doc, nil
}

// errDirective refuses <!DOCTYPE …>, <!ENTITY …> and any other <!…>
// directive wherever it stands: encoding/xml accepts one inside an
// element as readily as before the root, and nothing of the kind belongs
// in a reply.
var errDirective = errors.New("document type declarations and other <!…> directives are not allowed")

// checkTree refuses a directive anywhere and an element with more than
// maxAttrs attributes.
func checkTree(top *etree.Element) error {
	stack := []*etree.Element{top}
	for len(stack) > 0 {
		el := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if len(el.Attr) > maxAttrs {
			return fmt.Errorf("element <%s> has %d attributes, more than the limit of %d", el.FullTag(), len(el.Attr), maxAttrs)
		}
		for _, tok := range el.Child {
			switch t := tok.(type) {
			case *etree.Element:
				stack = append(stack, t)
			case *etree.Directive:
				return errDirective
			}
		}
	}
	return nil
}

// reply is a parsed SOAP envelope: read by the fast reader (fast set),
// or by etree when the fast reader left it to etree (faults, anything
// unusual; see fastread.go).
type reply struct {
	// raw is the body as received, for WithReplyHook.
	raw    []byte
	fast   *fastReply
	doc    *etree.Document
	header *etree.Element
	body   *etree.Element
}

// errNotSOAP marks a body that is not a SOAP 1.2 envelope.
var errNotSOAP = errors.New("not a SOAP envelope")

// parseEnvelope parses a reply body (see readXML for the limits).
func parseEnvelope(body []byte) (*reply, error) {
	doc, err := readXML(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotSOAP, err)
	}
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != NsSOAP {
		return nil, fmt.Errorf("%w: root element is not a SOAP 1.2 Envelope", errNotSOAP)
	}
	r := &reply{doc: doc}
	for _, c := range elementKids(env) {
		if c.NamespaceURI() != NsSOAP {
			continue
		}
		switch c.Tag {
		case "Header":
			r.header = c
		case "Body":
			r.body = c
		}
	}
	if r.body == nil {
		return nil, fmt.Errorf("%w: no s:Body", errNotSOAP)
	}
	return r, nil
}

// headerText returns the trimmed text of the header ns:local, or "".
func (r *reply) headerText(ns, local string) string {
	if r.fast != nil {
		return r.fast.headerText(ns, local)
	}
	if r.header == nil {
		return ""
	}
	for _, c := range r.header.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return strings.TrimSpace(textOf(c))
		}
	}
	return ""
}

// bodyChild returns the first element child of s:Body, or nil.
func (r *reply) bodyChild() *etree.Element {
	for _, tok := range r.body.Child {
		if el, ok := tok.(*etree.Element); ok {
			return el
		}
	}
	return nil
}

// fault returns the s:Fault element of the body, or nil.
func (r *reply) fault() *etree.Element {
	if c := r.bodyChild(); c != nil && c.Tag == "Fault" && c.NamespaceURI() == NsSOAP {
		return c
	}
	return nil
}

// child returns the first element child of el with namespace ns and local
// name local.
func child(el *etree.Element, ns, local string) *etree.Element {
	if el == nil {
		return nil
	}
	for _, tok := range el.Child {
		if c, ok := tok.(*etree.Element); ok && c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

// render serialises a document without an XML declaration (as pypsrp and
// Windows do). Canonical escaping keeps a carriage return in a value as
// &#xD; (a raw one would be read back as a line feed) and escapes line
// breaks in attribute values.
func render(doc *etree.Document) []byte {
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	var buf bytes.Buffer
	buf.Grow(2048)
	if _, err := doc.WriteTo(&buf); err != nil {
		// bytes.Buffer never fails.
		panic(err)
	}
	return buf.Bytes()
}

type (
	transportRequest  = transport.Request
	transportResponse = transport.Response
)
