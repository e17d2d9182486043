package wsman

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// This file is the fast reader for replies. It parses a reply into a
// compact tree (one slice of pointer-free nodes, names and text as
// offsets into the body itself) and reads instances, pages and EPRs
// from it exactly as the etree path (parseEnvelope, ParseInstance,
// parsePage) does: the differential tests in fastread_test.go compare the
// two on every capture, every fixture and fuzzed input.
//
// The reader is deliberately conservative. Whenever the input holds
// something it does not handle exactly as encoding/xml and etree do (a
// DTD or any other <!…> directive, a non-ASCII or oddly shaped name, an
// unusual character reference, a duplicate attribute, text outside the
// root, a limit exceeded, malformed markup) it gives up with
// errFastFallback and the caller parses the reply with etree, which gives
// the authoritative result or error. Faults also go to etree: they are
// rare and their parser is involved.
//
// tdewolff/parse/v2/xml was considered as the lexer: it writes into the
// buffer it is given (a NUL after the end, tabs and line breaks in
// attribute values turned into spaces) and, being built for minifying,
// accepts what encoding/xml refuses (unterminated constructs at the end,
// unquoted attribute values, any bytes in names), so the checks that make
// the result provably etree's would have been as long as this scanner.

// errFastFallback says the fast reader left the reply to the etree path.
var errFastFallback = errors.New("fast reader: left to the etree reader")

func fallback() error { return errFastFallback }

// span is a piece of fdoc.src, or (off < 0) the string fdoc.decoded[-off-1].
type span struct{ off, n int32 }

// fnode is one element of a fast-parsed document; node 0 is the document.
// It holds no pointers, so the node slice costs the collector nothing,
// and it is small: writing the nodes is a good part of parsing a page.
type fnode struct {
	// local is the offset of the local name in src; the prefix, if any
	// (pfxLen > 0), and its colon come right before it.
	local            int32
	localLen, pfxLen uint16
	ns               int32 // index in fdoc.nsTab
	// text is the first character-data piece directly inside the element
	// (if flags has hasText); more links further pieces in fdoc.pieces
	// (-1: none).
	text   span
	more   int32
	parent int32
	first  int32 // first element child, -1 when none
	next   int32 // next sibling element, -1 at the end
	attrLo int32 // the element's attributes are fdoc.attrs[attrLo:attrLo+nattr]
	nattr  uint16
	flags  uint8
}

// Bits of fnode.flags.
const (
	// hasTokens is set when the element has any child token at all:
	// elements, text, CDATA (even empty), comments, PIs (etree's Child).
	hasTokens = 1 << iota
	hasText   // text holds the first character-data piece
)

// maxNameLen bounds the parts of a name the fast reader takes (they are
// uint16 in fnode); longer names go to etree.
const maxNameLen = 1<<16 - 1

// frame is an element open while parsing: where its next child and text
// piece are linked, and where its namespace declarations start in binds.
type frame struct {
	node, last, lastMore, bindMark int32
}

// fattr is one attribute as written; its value decoded.
type fattr struct {
	prefix, local, value span
}

type fpiece struct {
	s    span
	next int32
}

type fbinding struct {
	prefix string // "" for the default namespace
	ns     int32  // index in fdoc.nsTab
}

// fdoc is a fast-parsed document. Its tables (nodes, attributes, text
// pieces, namespaces) are scratch: once the reply has been read, release
// returns them to docPool for the next reply, so that reading a page does
// not allocate and zero them again. The slabs belong to the instances
// built from them and are never reused.
type fdoc struct {
	// src is the reply body itself (see fastParse).
	src string
	// Slabs the instances of a reply are carved from: a page of jobs
	// costs a few allocations instead of a few per job.
	instSlab  []Instance
	propSlab  []Property
	valueSlab []Value
	slabSize  int
	nodes     []fnode
	attrs     []fattr
	pieces    []fpiece
	decoded   []string
	nsTab     []string // namespace URIs; entry 0 is "" (none)
	binds     []fbinding
	frames    []frame
	root      int32
	rep       fastReply
	// rawOK are recent attribute values of 16 bytes or more that read as
	// themselves: each item of a page declares the same namespaces, and
	// comparing is cheaper than looking at every byte again.
	rawOK   [8]string
	rawNext int
	// Room for the namespace tables of a typical reply, so that they cost
	// no allocations of their own.
	nsBuf    [16]string
	bindBuf  [16]fbinding
	frameBuf [32]frame
}

// docPool holds released documents' tables.
var docPool sync.Pool

// maxPooledNodes bounds the node table kept for reuse: a rare huge reply
// (the transport allows 16 MiB) should not pin its tables for ever.
// Pages of MaxEnvelopeSize (≤ 500 KiB) need far fewer.
const maxPooledNodes = 1 << 16

// release hands d's tables back for reuse. Nothing may use d afterwards;
// what was read from it (instances, pages, strings) stays valid, since it
// refers to the body and the slabs, never to the tables.
func (d *fdoc) release() {
	if d == nil || cap(d.nodes) > maxPooledNodes {
		return
	}
	d.reset()
	docPool.Put(d)
}

// reset empties d for another parse, keeping its tables' room. It drops
// every reference into the last reply, so that a pooled document does
// not keep that body alive.
func (d *fdoc) reset() {
	clear(d.decoded)
	clear(d.nsTab)
	clear(d.nsBuf[:])
	clear(d.binds)
	clear(d.bindBuf[:])
	frames := d.frames[:0]
	if cap(frames) == 0 {
		frames = nil // d.frameBuf, which moves with d
	}
	*d = fdoc{
		nodes: d.nodes[:0], attrs: d.attrs[:0], pieces: d.pieces[:0],
		decoded: d.decoded[:0], frames: frames,
	}
}

// release returns the tables of a fast-read reply for reuse; r must not
// be read afterwards.
func (r *reply) release() {
	if r != nil && r.fast != nil {
		r.fast.d.release()
		r.fast = nil
	}
}

func (d *fdoc) str(sp span) string {
	if sp.off < 0 {
		return d.decoded[-sp.off-1]
	}
	return d.src[sp.off : sp.off+sp.n]
}

// local and ns are the element's local name and namespace URI.
func (d *fdoc) local(n int32) string {
	nd := &d.nodes[n]
	return d.src[nd.local : nd.local+int32(nd.localLen)]
}
func (d *fdoc) ns(n int32) string { return d.nsTab[d.nodes[n].ns] }

// prefix is the element's prefix, "" for none.
func (d *fdoc) prefix(n int32) string {
	nd := &d.nodes[n]
	if nd.pfxLen == 0 {
		return ""
	}
	return d.src[nd.local-1-int32(nd.pfxLen) : nd.local-1]
}

// qname is the element's name as written.
func (d *fdoc) qname(n int32) string {
	nd := &d.nodes[n]
	lo := nd.local
	if nd.pfxLen > 0 {
		lo -= 1 + int32(nd.pfxLen)
	}
	return d.src[lo : nd.local+int32(nd.localLen)]
}

// attrsOf returns the attributes of element n.
func (d *fdoc) attrsOf(n int32) []fattr {
	nd := &d.nodes[n]
	return d.attrs[nd.attrLo : nd.attrLo+int32(nd.nattr)]
}

// is reports whether element n is ns:local.
func (d *fdoc) is(n int32, ns, local string) bool {
	return d.local(n) == local && d.ns(n) == ns
}

// textSpan records decoded character data found at src[off:off+len(raw)]:
// in place when it is the raw text itself.
func (d *fdoc) textSpan(txt string, off int, raw string) span {
	if len(txt) == len(raw) && txt == raw {
		return span{int32(off), int32(len(raw))}
	}
	d.decoded = append(d.decoded, txt)
	return span{-int32(len(d.decoded)), 0}
}

// maxFastInput bounds what the fast reader takes (offsets are int32);
// replies are bounded far below it by MaxEnvelopeSize anyway.
const maxFastInput = 1 << 30

// fastParse parses b under the same limits as readXML (depth, attributes,
// no DTD). Any error means "use the etree path".
//
// Names and text are not copied out of b: the document, and every string
// read from it (instance properties, selectors, the enumeration context),
// refer to b's bytes. That relies on transport.Response's contract: the
// caller owns a reply body, and no transport reuses or mutates it after
// returning it; nothing in this package writes to a body either (reply
// hooks may keep it but must not modify it, see WithReplyHook). The price
// is that any one string read from a reply keeps the whole body alive;
// replies are bounded by MaxEnvelopeSize (a page is a few hundred KiB at
// most), and a caller keeps the instances of a page about as long as the
// page anyway.
func fastParse(b []byte) (*fdoc, error) {
	d, _ := docPool.Get().(*fdoc)
	if d == nil {
		d = &fdoc{}
	}
	return fastParseDoc(d, b)
}

// fastParseDoc is fastParse into d, a new or reset document; on failure
// d is released.
func fastParseDoc(d *fdoc, b []byte) (*fdoc, error) {
	if len(b) > maxFastInput {
		d.release()
		return nil, fallback()
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	d.src, d.root = s, -1
	if cap(d.nodes) < len(s)/64 {
		// A new document, or one that read smaller replies. Most
		// elements have an end tag, so about half the '<' start one;
		// sizing the slices up front saves growing them. (Counting "</"
		// exactly costs more than an occasional growth.) Replies seldom
		// hold more than one element in 40 bytes, so a table with room
		// for one in 64 is kept and grows if need be.
		d.nodes = make([]fnode, 0, strings.Count(s, "<")*6/10+8)
		d.attrs = make([]fattr, 0, strings.Count(s, "=")+8)
	}
	d.nodes = append(d.nodes[:0], fnode{parent: -1, first: -1, next: -1, more: -1})
	d.nsTab = d.nsBuf[:1]
	d.binds = d.bindBuf[:0]
	if d.frames == nil {
		d.frames = d.frameBuf[:0]
	}
	if err := d.parse(s); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// parse is fastParse on a document whose tables are ready.
func (d *fdoc) parse(s string) error {
	// The open elements; frames[0] is the document.
	frames := append(d.frames[:0], frame{node: 0, last: -1, lastMore: -1})
	defer func() { d.frames = frames[:0] }()
	i := 0
	for i < len(s) {
		top := &frames[len(frames)-1]
		cur := top.node
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s)
			} else {
				j += i
			}
			if cur == 0 {
				if !isXMLSpace(s[i:j]) {
					return fallback()
				}
			} else {
				txt, err := decodeText(s[i:j], plainText)
				if err != nil {
					return err
				}
				d.addText(top, d.textSpan(txt, i, s[i:j]))
			}
			i = j
			continue
		}
		if i+1 >= len(s) {
			return fallback()
		}
		switch s[i+1] {
		case '/':
			if cur == 0 {
				return fallback()
			}
			// The end tag must repeat the start tag's qualified name
			// and end there.
			qname := d.qname(cur)
			if !strings.HasPrefix(s[i+2:], qname) {
				return fallback()
			}
			j := i + 2 + len(qname)
			if j < len(s) && (byteClass[s[j]]&cNameRest != 0 || s[j] == ':' || s[j] >= utf8.RuneSelf) {
				return fallback()
			}
			if j < len(s) && s[j] != '>' {
				j = skipSpace(s, j)
			}
			if j >= len(s) || s[j] != '>' {
				return fallback()
			}
			d.binds = d.binds[:top.bindMark]
			frames = frames[:len(frames)-1]
			i = j + 1
		case '?':
			end, err := skipPI(s, i)
			if err != nil {
				return err
			}
			if cur != 0 {
				d.nodes[cur].flags |= hasTokens
			}
			i = end
		case '!':
			switch {
			case strings.HasPrefix(s[i:], "<!--"):
				k := strings.Index(s[i+4:], "--")
				if k < 0 || i+4+k+2 >= len(s) || s[i+4+k+2] != '>' {
					return fallback()
				}
				if cur != 0 {
					d.nodes[cur].flags |= hasTokens
				}
				i = i + 4 + k + 3
			case strings.HasPrefix(s[i:], "<![CDATA["):
				k := strings.Index(s[i+9:], "]]>")
				if k < 0 || cur == 0 {
					return fallback()
				}
				raw := s[i+9 : i+9+k]
				txt, err := decodeText(raw, cdataText)
				if err != nil {
					return err
				}
				d.addText(top, d.textSpan(txt, i+9, raw))
				i = i + 9 + k + 3
			default:
				// DTDs and other directives: etree refuses a DOCTYPE,
				// and nothing else of the kind belongs in a reply.
				return fallback()
			}
		default:
			if cur == 0 && d.root >= 0 {
				return fallback() // a second root element
			}
			// frames holds the document too, so the new element's
			// depth is len(frames).
			if len(frames) > maxDepth {
				return fallback()
			}
			mark := int32(len(d.binds))
			n, selfClose, end, err := d.startTag(s, i, top)
			if err != nil {
				return err
			}
			if cur == 0 {
				d.root = n
			}
			if selfClose {
				d.binds = d.binds[:mark]
			} else {
				frames = append(frames, frame{node: n, last: -1, lastMore: -1, bindMark: mark})
			}
			i = end
		}
	}
	if len(frames) != 1 || d.root < 0 {
		return fallback()
	}
	return nil
}

// startTag parses the start tag at s[i] as a child of the open element
// parent and returns the new node, whether it closed itself, and where
// the tag ends. The element's namespace declarations are left on d.binds.
func (d *fdoc) startTag(s string, i int, parent *frame) (n int32, selfClose bool, end int, err error) {
	pfx, _, k := scanName(s[i+1:])
	if k == 0 || k > maxNameLen {
		return 0, false, 0, fallback()
	}
	nameOff := i + 1
	j := i + 1 + k
	attrLo := len(d.attrs)
	declares := false
	for {
		sp := j
		if sp < len(s) && s[sp] != '>' && s[sp] != '/' {
			sp = skipSpace(s, j)
		}
		if sp >= len(s) {
			return 0, false, 0, fallback()
		}
		if s[sp] == '>' {
			j = sp + 1
			break
		}
		if s[sp] == '/' {
			if sp+1 >= len(s) || s[sp+1] != '>' {
				return 0, false, 0, fallback()
			}
			j = sp + 2
			selfClose = true
			break
		}
		apfx, alocal, an := scanName(s[sp:])
		if an == 0 {
			return 0, false, 0, fallback()
		}
		j = sp + an
		if j < len(s) && s[j] != '=' {
			j = skipSpace(s, j)
		}
		if j >= len(s) || s[j] != '=' {
			return 0, false, 0, fallback()
		}
		j++
		if j < len(s) && s[j] != '"' && s[j] != '\'' {
			j = skipSpace(s, j)
		}
		if j >= len(s) || (s[j] != '"' && s[j] != '\'') {
			return 0, false, 0, fallback()
		}
		q := s[j]
		vend := strings.IndexByte(s[j+1:], q)
		if vend < 0 {
			return 0, false, 0, fallback()
		}
		raw := s[j+1 : j+1+vend]
		val, err := d.attrValue(raw)
		if err != nil {
			return 0, false, 0, err
		}
		for k := attrLo; k < len(d.attrs); k++ {
			if a := &d.attrs[k]; d.str(a.local) == alocal && d.str(a.prefix) == apfx {
				return 0, false, 0, fallback() // duplicate attribute
			}
		}
		if len(d.attrs)-attrLo >= maxAttrs {
			return 0, false, 0, fallback()
		}
		pl := len(apfx)
		if pl > 0 {
			pl++ // the colon
		}
		d.attrs = append(d.attrs, fattr{
			prefix: span{int32(sp), int32(len(apfx))},
			local:  span{int32(sp + pl), int32(len(alocal))},
			value:  d.textSpan(val, j+1, raw),
		})
		j = j + 1 + vend + 1
		switch {
		case apfx == "xmlns":
			d.binds = append(d.binds, fbinding{prefix: alocal, ns: d.intern(val)})
			declares = true
		case apfx == "" && alocal == "xmlns":
			d.binds = append(d.binds, fbinding{prefix: "", ns: d.intern(val)})
			declares = true
		}
	}
	var ns int32
	if pn := parent.node; pn != 0 && !declares && int(d.nodes[pn].pfxLen) == len(pfx) && d.prefix(pn) == pfx {
		// Most elements share their parent's prefix and declare nothing.
		ns = d.nodes[pn].ns
	} else {
		ns = d.lookup(pfx)
	}
	pl := len(pfx)
	if pl > 0 {
		pl++ // the colon
	}
	n = int32(len(d.nodes))
	d.nodes = append(d.nodes, fnode{
		local: int32(nameOff + pl), localLen: uint16(k - pl), pfxLen: uint16(len(pfx)),
		ns: ns, parent: parent.node,
		first: -1, next: -1, more: -1,
		attrLo: int32(attrLo), nattr: uint16(len(d.attrs) - attrLo),
	})
	p := &d.nodes[parent.node]
	p.flags |= hasTokens
	if parent.last >= 0 {
		d.nodes[parent.last].next = n
	} else {
		p.first = n
	}
	parent.last = n
	return n, selfClose, j, nil
}

// attrValue is decodeText(raw, attrValue), answered from d.rawOK for a
// long value seen before.
func (d *fdoc) attrValue(raw string) (string, error) {
	if len(raw) < 16 {
		return decodeText(raw, attrValue)
	}
	for _, r := range d.rawOK {
		if len(r) == len(raw) && r == raw {
			return raw, nil
		}
	}
	val, err := decodeText(raw, attrValue)
	if err == nil && len(val) == len(raw) && val == raw {
		d.rawOK[d.rawNext] = raw
		d.rawNext = (d.rawNext + 1) % len(d.rawOK)
	}
	return val, err
}

// maxIntern bounds how far back intern looks for a namespace URI.
const maxIntern = 16

// intern returns the index of uri in d.nsTab, adding it unless one of
// the last few entries is uri already (a page's items each declare the
// same few namespaces).
func (d *fdoc) intern(uri string) int32 {
	for k := len(d.nsTab) - 1; k >= 1 && k >= len(d.nsTab)-maxIntern; k-- {
		if d.nsTab[k] == uri {
			return int32(k)
		}
	}
	d.nsTab = append(d.nsTab, uri)
	return int32(len(d.nsTab) - 1)
}

// lookup resolves a prefix ("" for the default namespace) in the open
// elements' declarations, innermost first; undeclared is "" (entry 0) as
// in etree.
func (d *fdoc) lookup(prefix string) int32 {
	for k := len(d.binds) - 1; k >= 0; k-- {
		if d.binds[k].prefix == prefix {
			return d.binds[k].ns
		}
	}
	return 0
}

// attrNS resolves the prefix of an attribute of element n the way etree's
// Attr.NamespaceURI does: the declarations of n and then of its
// ancestors, in attribute order on each; "" when unprefixed or undeclared.
func (d *fdoc) attrNS(n int32, prefix string) string {
	if prefix == "" {
		return ""
	}
	for e := n; e > 0; e = d.nodes[e].parent {
		for k := range d.attrsOf(e) {
			if a := &d.attrsOf(e)[k]; d.str(a.prefix) == "xmlns" && d.str(a.local) == prefix {
				return d.str(a.value)
			}
		}
	}
	return ""
}

// addText appends a character-data piece to the open element f; the
// first piece is kept inline so that a leaf costs no extra allocation.
func (d *fdoc) addText(f *frame, txt span) {
	nd := &d.nodes[f.node]
	if nd.flags&hasText == 0 {
		nd.flags |= hasTokens | hasText
		nd.text = txt
		return
	}
	d.pieces = append(d.pieces, fpiece{s: txt, next: -1})
	k := int32(len(d.pieces) - 1)
	if nd.more < 0 {
		nd.more = k
	} else {
		d.pieces[f.lastMore].next = k
	}
	f.lastMore = k
}

// textOf is the etree textOf: every character-data piece directly inside
// n, joined.
func (d *fdoc) textOf(n int32) string {
	nd := &d.nodes[n]
	if nd.flags&hasText == 0 {
		return ""
	}
	if nd.more < 0 {
		return d.str(nd.text)
	}
	var b strings.Builder
	b.WriteString(d.str(nd.text))
	for k := nd.more; k >= 0; k = d.pieces[k].next {
		b.WriteString(d.str(d.pieces[k].s))
	}
	return b.String()
}

// Byte classes for the scanner's inner loops.
const (
	cNameStart = 1 << iota // A-Z a-z _
	cNameRest              // name start, 0-9 . -
	cText                  // needs a look in character data
	cAttr                  // needs a look in an attribute value
	cCDATA                 // needs a look in a CDATA section
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', c == '_':
			t[c] |= cNameStart | cNameRest
		case '0' <= c && c <= '9', c == '.', c == '-':
			t[c] |= cNameRest
		}
		if c < 0x20 && c != '\t' && c != '\n' || c == '\r' || c >= 0x80 {
			t[c] |= cText | cAttr | cCDATA
		}
	}
	t['&'] |= cText | cAttr
	t[']'] |= cText
	t['<'] |= cAttr
	return t
}()

// scanName reads a qualified name at the start of s: prefix, local part
// and its length (0 when there is none, or when it has a shape etree would
// read differently: several colons, an empty part, a part that starts
// with a digit, '.' or '-', non-ASCII bytes). Only the ASCII subset of
// XML names is handled; anything else goes to etree.
func scanName(s string) (prefix, local string, n int) {
	if len(s) == 0 || byteClass[s[0]]&cNameStart == 0 {
		return "", "", 0
	}
	n = 1
	for n < len(s) && byteClass[s[n]]&cNameRest != 0 {
		n++
	}
	if n < len(s) && s[n] == ':' {
		colon := n
		n++
		if n >= len(s) || byteClass[s[n]]&cNameStart == 0 {
			return "", "", 0
		}
		n++
		for n < len(s) && byteClass[s[n]]&cNameRest != 0 {
			n++
		}
		if n < len(s) && (s[n] == ':' || s[n] >= utf8.RuneSelf) {
			return "", "", 0
		}
		return s[:colon], s[colon+1 : n], n
	}
	if n < len(s) && s[n] >= utf8.RuneSelf {
		return "", "", 0
	}
	return "", s[:n], n
}

func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func isXMLSpace(s string) bool {
	return skipSpace(s, 0) == len(s)
}

// skipPI skips the processing instruction at s[i] and returns where it
// ends. An XML declaration must say version 1.0 if it names a version, as
// encoding/xml requires; etree reads any declared encoding as UTF-8.
func skipPI(s string, i int) (int, error) {
	_, target, n := scanName(s[i+2:])
	if n == 0 || strings.IndexByte(s[i+2:i+2+n], ':') >= 0 {
		return 0, fallback()
	}
	j := skipSpace(s, i+2+n)
	k := strings.Index(s[j:], "?>")
	if k < 0 {
		return 0, fallback()
	}
	if target == "xml" {
		if v := procInstParam("version", s[j:j+k]); v != "" && v != "1.0" {
			return 0, fallback()
		}
	}
	return j + k + 2, nil
}

// procInstParam is encoding/xml's procInst: the value of param="…" or
// param='…' in a processing instruction, "" when absent.
func procInstParam(param, s string) string {
	param += "="
	lenp := len(param)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := strings.Index(sub, param)
		if k < 0 || lenp+k >= len(sub) {
			return ""
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}

// Kinds of character data for decodeText.
const (
	plainText  = 0
	cdataText  = 1
	attrValue  = 2
	maxCharRef = 8 // digits of the longest character reference handled
)

// decodeText returns the character data raw as encoding/xml returns it:
// entity and character references decoded (not in CDATA), CR LF and lone
// CR turned into LF. It is raw itself unless something needs rewriting.
// Anything encoding/xml refuses, and anything it would read in a way this
// function does not copy exactly, falls back.
func decodeText(raw string, kind int) (string, error) {
	mask := uint8(cText)
	// b1 and b2 are the bytes besides controls and non-ASCII that need a
	// look (swarClean).
	b1, b2 := byte('&'), byte(']')
	switch kind {
	case attrValue:
		mask = cAttr
		b1, b2 = '&', '<'
	case cdataText:
		mask = cCDATA
		b1, b2 = 0, 0 // controls already
	}
	rewrite := false
	for i := 0; i < len(raw); {
		// Eight bytes at a time while none needs a look.
		for i+8 <= len(raw) && swarClean(raw[i:i+8], b1, b2) {
			i += 8
		}
		if i >= len(raw) {
			break
		}
		c := raw[i]
		if byteClass[c]&mask == 0 {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch {
			case c == '&', c == '\r':
				rewrite = true
			case c == '<':
				return "", fallback()
			case c == ']':
				if strings.HasPrefix(raw[i:], "]]>") {
					return "", fallback()
				}
			default: // a control character
				return "", fallback()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(raw[i:])
		if r == utf8.RuneError && size == 1 || !xmlCharRange(r) {
			return "", fallback()
		}
		i += size
	}
	if !rewrite {
		return raw, nil
	}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\r':
			b = append(b, '\n')
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		case c == '&' && kind != cdataText:
			semi := strings.IndexByte(raw[i:], ';')
			if semi < 0 {
				return "", fallback()
			}
			ref := raw[i+1 : i+semi]
			switch ref {
			case "lt":
				b = append(b, '<')
			case "gt":
				b = append(b, '>')
			case "amp":
				b = append(b, '&')
			case "apos":
				b = append(b, '\'')
			case "quot":
				b = append(b, '"')
			default:
				r, ok := charRef(ref)
				if !ok {
					return "", fallback()
				}
				b = utf8.AppendRune(b, r)
			}
			i += semi
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// Byte-wise constants for swarClean.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// swarClean reports whether none of the 8 bytes of w is a control
// character (tab and line feed included), non-ASCII, b1 or b2: then
// decodeText has nothing to look at in them. It may say false for bytes
// that are fine (a tab); never true for one that is not.
func swarClean(w string, b1, b2 byte) bool {
	x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	// A byte below 0x20 or from 0x80 up; then a zero byte in x^b1 or
	// x^b2 (the classic has-zero-byte test: exact about whether any is).
	bad := (x-swarOnes*0x20)&^x | x
	y1, y2 := x^(swarOnes*uint64(b1)), x^(swarOnes*uint64(b2))
	bad |= (y1 - swarOnes) &^ y1
	bad |= (y2 - swarOnes) &^ y2
	return bad&swarHigh == 0
}

// charRef decodes the inside of &#…; (decimal) or &#x…; (hex, lower-case
// x only, as encoding/xml reads it) when it names an XML character.
func charRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	digits, base := ref[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 || len(digits) > maxCharRef {
		return 0, false
	}
	var r rune
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var v rune
		switch {
		case '0' <= c && c <= '9':
			v = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			v = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			v = rune(c-'A') + 10
		default:
			return 0, false
		}
		r = r*base + v
	}
	// Surrogates are outside xmlCharRange; encoding/xml would turn them
	// into U+FFFD, which is left to it.
	return r, xmlCharRange(r)
}

// fastReply is a reply read by the fast reader; header is -1 when absent.
// fastReply is a reply read by the fast reader; header is -1 when absent.
type fastReply struct {
	d            *fdoc
	header, body int32
}

// parseFastReply is parseEnvelope on the fast reader. It falls back
// (errFastFallback) for anything parseEnvelope would refuse and for
// faults, so that the etree path produces the error or the *Fault.
func parseFastReply(b []byte) (*fastReply, error) {
	d, err := fastParse(b)
	if err != nil {
		return nil, err
	}
	return d.replyOrRelease()
}

// replyOrRelease reads the envelope of a parsed reply; on failure d is
// released.
func (d *fdoc) replyOrRelease() (*fastReply, error) {
	r, err := d.reply()
	if err != nil {
		d.release()
		return nil, err
	}
	return r, nil
}

func (d *fdoc) reply() (*fastReply, error) {
	env := d.root
	if !d.is(env, NsSOAP, "Envelope") {
		return nil, fallback()
	}
	// The reply lives in d, and is released with it.
	r := &d.rep
	*r = fastReply{d: d, header: -1, body: -1}
	for c := d.nodes[env].first; c >= 0; c = d.nodes[c].next {
		if d.ns(c) != NsSOAP {
			continue
		}
		switch d.local(c) {
		case "Header":
			r.header = c
		case "Body":
			r.body = c
		}
	}
	if r.body < 0 {
		return nil, fallback()
	}
	if c := r.bodyChild(); c >= 0 && d.local(c) == "Fault" && d.ns(c) == NsSOAP {
		return nil, fallback()
	}
	return r, nil
}

// headerText is reply.headerText.
func (r *fastReply) headerText(ns, local string) string {
	if r.header < 0 {
		return ""
	}
	d := r.d
	for c := d.nodes[r.header].first; c >= 0; c = d.nodes[c].next {
		if d.local(c) == local && d.ns(c) == ns {
			return strings.TrimSpace(d.textOf(c))
		}
	}
	return ""
}

// bodyChild is reply.bodyChild: the first element in s:Body, or -1.
func (r *fastReply) bodyChild() int32 {
	return r.d.nodes[r.body].first
}

// child is the package's child(): the first element child of n with
// namespace ns and local name local, or -1.
func (d *fdoc) child(n int32, ns, local string) int32 {
	if n < 0 {
		return -1
	}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		if d.local(c) == local && d.ns(c) == ns {
			return c
		}
	}
	return -1
}

// xsiAttr is the package's xsiAttr.
func (d *fdoc) xsiAttr(n int32, local string) string {
	attrs := d.attrsOf(n)
	for k := range attrs {
		a := &attrs[k]
		if a.prefix.n != 0 && d.str(a.local) == local && d.attrNS(n, d.str(a.prefix)) == NsXSI {
			return d.str(a.value)
		}
	}
	return ""
}

// attr returns the value of the unqualified attribute name, as
// unqualifiedAttr does: q:Name is another attribute.
func (d *fdoc) attr(n int32, name string) string {
	attrs := d.attrsOf(n)
	for k := range attrs {
		if a := &attrs[k]; a.prefix.n == 0 && d.str(a.local) == name {
			return d.str(a.value)
		}
	}
	return ""
}

func (d *fdoc) nkids(n int32) int {
	k := 0
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		k++
	}
	return k
}

// parseInstance is ParseInstance.
func (d *fdoc) parseInstance(n int32) (*Instance, error) {
	in := d.newInstance()
	in.ClassName, in.ResourceURI = d.local(n), d.ns(n)
	if in.ResourceURI == NsWSMan && in.ClassName == "XmlFragment" {
		in.Fragment = true
	}
	if t := d.xsiAttr(n, "type"); t != "" {
		in.TypeName = localPart(t)
	}
	if err := d.parseProps(in, n); err != nil {
		return nil, err
	}
	return in, nil
}

// parseProps is parseProps.
func (d *fdoc) parseProps(in *Instance, n int32) error {
	k := d.nkids(n)
	slab := d.values(k)
	if in.Props == nil && k > 0 {
		in.Props = d.props(k)
	}
	// seen has bit propBit(name) of each name in in.Props: most names are
	// new, and a clear bit says so without comparing with every earlier
	// one. It starts empty only when in.Props does.
	var seen uint64
	if len(in.Props) > 0 {
		seen = ^uint64(0)
	}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		name := d.local(c)
		if name == "Location" && d.ns(c) == NsCIM {
			continue
		}
		bit := propBit(name)
		if seen&bit != 0 {
			if p := findProp(in.Props, name); p != nil {
				var v Value
				if err := d.parseValue(c, &v); err != nil {
					return fmt.Errorf("parse %s.%s: %w", in.ClassName, name, err)
				}
				p.Values = append(p.Values, v)
				continue
			}
		}
		seen |= bit
		sv := &slab[0]
		if err := d.parseValue(c, sv); err != nil {
			return fmt.Errorf("parse %s.%s: %w", in.ClassName, name, err)
		}
		if len(in.Props) < cap(in.Props) {
			in.Props = in.Props[:len(in.Props)+1]
		} else {
			in.Props = append(in.Props, Property{})
		}
		p := &in.Props[len(in.Props)-1]
		p.Name, p.Values = name, slab[:1:1]
		slab = slab[1:]
	}
	return nil
}

// propBit is a name's bit in parseProps' seen set.
func propBit(name string) uint64 {
	h := uint(len(name))
	if h > 0 {
		h += uint(name[len(name)-1])
	}
	return 1 << (h & 63)
}

// Shapes of a property element, as parseValue reads it (valueShape).
const (
	shapeText = iota
	shapeNil
	shapeDatetime // the text of the one child, cim:Datetime
	shapeInterval // the text of the one child, cim:Interval
	shapeRef
	shapeChild // an embedded object: the one child element holds its properties
	shapeSelf  // an embedded object: the property element holds its properties
)

// valueShape is how parseValue reads the property element c. ObjectView
// and PropView read values through it too, so that a value seen through a
// view is the Value that ParseInstance would have built.
func (d *fdoc) valueShape(c int32) int {
	nd := &d.nodes[c]
	if nd.nattr != 0 && isTrue(d.xsiAttr(c, "nil")) {
		return shapeNil
	}
	first := nd.first
	if first < 0 {
		return shapeText
	}
	only := d.nodes[first].next < 0
	if only && d.nodes[first].first < 0 {
		if ns := d.ns(first); ns == NsCIM || ns == "" {
			switch d.local(first) {
			case "Datetime":
				return shapeDatetime
			case "Interval":
				return shapeInterval
			}
		}
	}
	if d.child(c, NsAddressing, "Address") >= 0 && d.child(c, NsAddressing, "ReferenceParameters") >= 0 {
		return shapeRef
	}
	if only && (d.nodes[first].first >= 0 || strings.HasSuffix(d.xsiAttr(first, "type"), "_Type") || d.isEmptyObject(first)) {
		return shapeChild
	}
	return shapeSelf
}

// selfClass is the class name of the embedded object that the property
// element c itself holds (shapeSelf), as parseValue names it; typeName is
// the local part of c's xsi:type.
func (d *fdoc) selfClass(c int32) (class, typeName string) {
	if t := d.xsiAttr(c, "type"); t != "" {
		typeName = localPart(t)
		return strings.TrimSuffix(typeName, "_Type"), typeName
	}
	return d.local(c), ""
}

// parseValue is parseValue, written into sv, a zero Value. Field by
// field, and straight into the slab, rather than as a whole struct: a
// struct copy into the heap while the collector runs takes the bulk write
// barrier, which walked the type's pointer map for every property and was
// a tenth of the time of reading a page. Nothing is written on failure.
func (d *fdoc) parseValue(c int32, sv *Value) error {
	switch d.valueShape(c) {
	case shapeNil:
		sv.Kind = KindNil
	case shapeText:
		sv.Kind, sv.Text = KindText, d.textOf(c)
	case shapeDatetime:
		sv.Kind, sv.Text = KindDatetime, strings.TrimSpace(d.textOf(d.nodes[c].first))
	case shapeInterval:
		sv.Kind, sv.Text = KindInterval, strings.TrimSpace(d.textOf(d.nodes[c].first))
	case shapeRef:
		epr, err := d.parseEPR(c)
		if err != nil {
			return err
		}
		sv.Kind, sv.Ref = KindReference, epr
	case shapeChild:
		obj, err := d.parseInstance(d.nodes[c].first)
		if err != nil {
			return err
		}
		sv.Kind, sv.Object = KindObject, obj
	default:
		obj := d.newInstance()
		obj.ClassName, obj.TypeName = d.selfClass(c)
		obj.ResourceURI = d.ns(d.nodes[c].first)
		if err := d.parseProps(obj, c); err != nil {
			return err
		}
		sv.Kind, sv.Object = KindObject, obj
	}
	return nil
}

// isEmptyObject is isEmptyObject.
func (d *fdoc) isEmptyObject(n int32) bool {
	return d.nodes[n].flags&hasTokens == 0 && d.xsiAttr(n, "nil") == ""
}

// parseEPR is parseEPR.
func (d *fdoc) parseEPR(n int32) (*EndpointReference, error) {
	epr := &EndpointReference{}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		if d.ns(c) != NsAddressing {
			continue
		}
		switch d.local(c) {
		case "Address":
			epr.Address = strings.TrimSpace(d.textOf(c))
		case "ReferenceParameters":
			for r := d.nodes[c].first; r >= 0; r = d.nodes[r].next {
				if d.ns(r) != NsWSMan {
					continue
				}
				switch d.local(r) {
				case "ResourceURI":
					epr.ResourceURI = strings.TrimSpace(d.textOf(r))
				case "SelectorSet":
					sels, err := d.parseSelectorSet(r)
					if err != nil {
						return nil, err
					}
					epr.Selectors = sels
				}
			}
		}
	}
	return epr, nil
}

// parseSelectorSet is parseSelectorSet.
func (d *fdoc) parseSelectorSet(n int32) ([]Selector, error) {
	var sels []Selector
	for s := d.nodes[n].first; s >= 0; s = d.nodes[s].next {
		if d.local(s) != "Selector" || d.ns(s) != NsWSMan {
			continue
		}
		sel := Selector{Name: d.attr(s, "Name")}
		if sel.Name == "" {
			return nil, fmt.Errorf("selector without a Name attribute")
		}
		if d.nodes[s].first >= 0 {
			for k := d.nodes[s].first; k >= 0; k = d.nodes[k].next {
				if d.local(k) == "EndpointReference" && d.ns(k) == NsAddressing {
					epr, err := d.parseEPR(k)
					if err != nil {
						return nil, err
					}
					sel.EPR = epr
				}
			}
		} else {
			sel.Value = d.textOf(s)
		}
		sels = append(sels, sel)
	}
	return sels, nil
}

// parsePage is parsePage.
func (r *fastReply) parsePage(want string) (*page, error) {
	d := r.d
	resp := d.child(r.body, NsEnumeration, want)
	if resp < 0 {
		return nil, fmt.Errorf("%w: no n:%s in the body", ErrProtocol, want)
	}
	var buf [2]int32
	p, its := d.scanPage(resp, buf[:0])
	for _, n := range its {
		items, err := d.parseItems(n)
		if err != nil {
			return nil, err
		}
		p.items = append(p.items, items...)
	}
	return p, nil
}

// scanPage reads the enumeration context and end-of-sequence marker of
// the page element resp (a missing or empty context also ends the
// enumeration) and appends its Items elements to its: what parsePage and
// parseViewPage share before they read the items their own way.
func (d *fdoc) scanPage(resp int32, its []int32) (*page, []int32) {
	p := &page{}
	hasContext := false
	for c := d.nodes[resp].first; c >= 0; c = d.nodes[c].next {
		ns := d.ns(c)
		if ns != NsEnumeration && ns != NsWSMan {
			continue
		}
		switch d.local(c) {
		case "EnumerationContext":
			hasContext = true
			p.context = strings.TrimSpace(d.textOf(c))
		case "EndOfSequence":
			p.done = true
		case "Items":
			its = append(its, c)
		}
	}
	if !hasContext || p.context == "" {
		p.done = true
	}
	return p, its
}

// parseItems is parseItems.
func (d *fdoc) parseItems(n int32) ([]*Item, error) {
	k := d.nkids(n)
	out := make([]*Item, 0, k)
	// One slab for the items themselves.
	slab := make([]Item, k)
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		it := &slab[0]
		slab = slab[1:]
		switch {
		case d.is(c, NsWSMan, "Item"):
			for g := d.nodes[c].first; g >= 0; g = d.nodes[g].next {
				if d.local(g) == "EndpointReference" && d.ns(g) == NsAddressing {
					epr, err := d.parseEPR(g)
					if err != nil {
						return nil, err
					}
					it.EPR = epr
				} else if it.Instance == nil {
					in, err := d.parseInstance(g)
					if err != nil {
						return nil, err
					}
					it.Instance = in
				}
			}
		case d.is(c, NsAddressing, "EndpointReference"):
			epr, err := d.parseEPR(c)
			if err != nil {
				return nil, err
			}
			it.EPR = epr
		default:
			in, err := d.parseInstance(c)
			if err != nil {
				return nil, err
			}
			it.Instance = in
		}
		out = append(out, it)
	}
	return out, nil
}

// identify is reply.identify on the fast reader.
func (r *fastReply) identify() (*IdentifyResponse, bool) {
	d := r.d
	ir := d.child(r.body, NsIdentity, "IdentifyResponse")
	if ir < 0 {
		return nil, false
	}
	out := &IdentifyResponse{}
	for e := d.nodes[ir].first; e >= 0; e = d.nodes[e].next {
		if d.ns(e) != NsIdentity {
			continue
		}
		switch d.local(e) {
		case "ProtocolVersion":
			out.ProtocolVersion = strings.TrimSpace(d.textOf(e))
		case "ProductVendor":
			out.ProductVendor = strings.TrimSpace(d.textOf(e))
		case "ProductVersion":
			out.ProductVersion = strings.TrimSpace(d.textOf(e))
		case "SecurityProfiles":
			for p := d.nodes[e].first; p >= 0; p = d.nodes[p].next {
				out.SecurityProfiles = append(out.SecurityProfiles, strings.TrimSpace(d.textOf(p)))
			}
		}
	}
	return out, true
}

// nextSlab is the size of the next slab: small for a Get, growing for a
// page of items.
func (d *fdoc) nextSlab(need int) int {
	if d.slabSize < 256 {
		d.slabSize = max(8, d.slabSize*2)
	}
	return max(need, d.slabSize)
}

func (d *fdoc) newInstance() *Instance {
	if len(d.instSlab) == 0 {
		d.instSlab = make([]Instance, d.nextSlab(1)/4+1)
	}
	in := &d.instSlab[0]
	d.instSlab = d.instSlab[1:]
	return in
}

// props returns an empty property slice with room for k.
func (d *fdoc) props(k int) []Property {
	if len(d.propSlab) < k {
		d.propSlab = make([]Property, d.nextSlab(k))
	}
	p := d.propSlab[:0:k]
	d.propSlab = d.propSlab[k:]
	return p
}

// values returns k zero values.
func (d *fdoc) values(k int) []Value {
	if len(d.valueSlab) < k {
		d.valueSlab = make([]Value, d.nextSlab(k))
	}
	v := d.valueSlab[:k:k]
	d.valueSlab = d.valueSlab[k:]
	return v
}

// findProp is Instance.propExact for the fast reader. Names in Props are
// unique (a repeat joins the earlier property), so the search order does
// not matter; comparing the last byte first skips most of the memory
// comparisons between names like Prop01 … Prop39.
func findProp(props []Property, name string) *Property {
	if name == "" {
		for i := range props {
			if props[i].Name == "" {
				return &props[i]
			}
		}
		return nil
	}
	last := name[len(name)-1]
	for i := len(props) - 1; i >= 0; i-- {
		if n := props[i].Name; len(n) == len(name) && n[len(n)-1] == last && n == name {
			return &props[i]
		}
	}
	return nil
}
