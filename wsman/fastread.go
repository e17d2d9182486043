package wsman

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file is the fast reader for replies. It parses a reply into a
// compact tree (one slice of nodes, text as substrings of one copy of the
// body) and reads instances, pages and EPRs from it exactly as the etree
// path (parseEnvelope, ParseInstance, parsePage) does: the differential
// tests in fastread_test.go compare the two on every capture, every
// fixture and fuzzed input.
//
// The reader is deliberately conservative. Whenever the input holds
// something it does not handle exactly as encoding/xml and etree do (a
// DTD or any other <!…> directive, a non-ASCII or oddly shaped name, an
// unusual character reference, a duplicate attribute, text outside the
// root, a limit exceeded, malformed markup) it gives up with
// errFastFallback and the caller parses the reply with etree, which gives
// the authoritative result or error. Faults also go to etree: they are
// rare and their parser is involved.

// errFastFallback says the fast reader left the reply to the etree path.
var errFastFallback = errors.New("fast reader: left to the etree reader")

func fallback() error { return errFastFallback }

// fnode is one element of a fast-parsed document; node 0 is the document.
type fnode struct {
	local string
	ns    string
	// text is the first character-data piece directly inside the element;
	// more and lastMore link further pieces in fdoc.pieces (-1: none).
	text           string
	ntext          int32
	more, lastMore int32
	prefix         string
	parent         int32
	first, last    int32 // element children, -1 when none
	next           int32 // next sibling element, -1 at the end
	attrLo, attrHi int32 // the element's attributes in fdoc.attrs
	// hasTokens is true when the element has any child token at all:
	// elements, text, CDATA (even empty), comments, PIs (etree's Child).
	hasTokens bool
}

// fattr is an attribute with its prefix resolved as etree resolves it.
type fattr struct {
	prefix, local string
	ns            string // "" when unprefixed or the prefix is undeclared
	value         string
}

type fpiece struct {
	s    string
	next int32
}

type fbinding struct {
	prefix string // "" for the default namespace
	uri    string
}

// fdoc is a fast-parsed document.
type fdoc struct {
	src    string
	nodes  []fnode
	attrs  []fattr
	pieces []fpiece
	binds  []fbinding
	root   int32
}

// fastParse parses b under the same limits as readXML (depth, attributes,
// no DTD). Any error means "use the etree path".
func fastParse(b []byte) (*fdoc, error) {
	s := string(b)
	d := &fdoc{src: s, root: -1}
	// Every element starts with '<'; half of them is a good first guess
	// (most elements have an end tag).
	d.nodes = make([]fnode, 1, 1+strings.Count(s, "<")/2+8)
	d.nodes[0] = fnode{parent: -1, first: -1, last: -1, next: -1, more: -1, lastMore: -1}
	d.attrs = make([]fattr, 0, 16)
	d.binds = make([]fbinding, 0, 16)
	bindMark := make([]int32, 1, 16) // binds length when each open element started
	cur := int32(0)
	depth := 0
	i := 0
	for i < len(s) {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s)
			} else {
				j += i
			}
			if cur == 0 {
				if !isXMLSpace(s[i:j]) {
					return nil, fallback()
				}
			} else {
				txt, err := decodeText(s[i:j], 0)
				if err != nil {
					return nil, err
				}
				d.addText(cur, txt)
			}
			i = j
			continue
		}
		if i+1 >= len(s) {
			return nil, fallback()
		}
		switch s[i+1] {
		case '/':
			pfx, local, n := scanName(s[i+2:])
			if n == 0 {
				return nil, fallback()
			}
			j := skipSpace(s, i+2+n)
			if cur == 0 || j >= len(s) || s[j] != '>' {
				return nil, fallback()
			}
			// The end tag must repeat the start tag's qualified name.
			if nd := &d.nodes[cur]; nd.local != local || nd.prefix != pfx {
				return nil, fallback()
			}
			d.binds = d.binds[:bindMark[len(bindMark)-1]]
			bindMark = bindMark[:len(bindMark)-1]
			cur = d.nodes[cur].parent
			depth--
			i = j + 1
		case '?':
			end, err := skipPI(s, i)
			if err != nil {
				return nil, err
			}
			if cur != 0 {
				d.nodes[cur].hasTokens = true
			}
			i = end
		case '!':
			switch {
			case strings.HasPrefix(s[i:], "<!--"):
				k := strings.Index(s[i+4:], "--")
				if k < 0 || i+4+k+2 >= len(s) || s[i+4+k+2] != '>' {
					return nil, fallback()
				}
				if cur != 0 {
					d.nodes[cur].hasTokens = true
				}
				i = i + 4 + k + 3
			case strings.HasPrefix(s[i:], "<![CDATA["):
				k := strings.Index(s[i+9:], "]]>")
				if k < 0 || cur == 0 {
					return nil, fallback()
				}
				txt, err := decodeText(s[i+9:i+9+k], cdataText)
				if err != nil {
					return nil, err
				}
				d.addText(cur, txt)
				d.nodes[cur].hasTokens = true
				i = i + 9 + k + 3
			default:
				// DTDs and other directives: etree refuses a DOCTYPE,
				// and nothing else of the kind belongs in a reply.
				return nil, fallback()
			}
		default:
			if cur == 0 && d.root >= 0 {
				return nil, fallback() // a second root element
			}
			if depth+1 > maxDepth {
				return nil, fallback()
			}
			mark := int32(len(d.binds))
			n, selfClose, end, err := d.startTag(s, i, cur)
			if err != nil {
				return nil, err
			}
			if cur == 0 {
				d.root = n
			}
			if selfClose {
				d.binds = d.binds[:mark]
			} else {
				cur = n
				depth++
				bindMark = append(bindMark, mark)
			}
			i = end
		}
	}
	if cur != 0 || d.root < 0 {
		return nil, fallback()
	}
	return d, nil
}

// startTag parses the start tag at s[i] as a child of parent and returns
// the new node, whether it closed itself, and where the tag ends. The
// element's namespace declarations are left on d.binds.
func (d *fdoc) startTag(s string, i int, parent int32) (n int32, selfClose bool, end int, err error) {
	pfx, local, k := scanName(s[i+1:])
	if k == 0 {
		return 0, false, 0, fallback()
	}
	j := i + 1 + k
	attrLo := len(d.attrs)
	for {
		sp := skipSpace(s, j)
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
		j = skipSpace(s, sp+an)
		if j >= len(s) || s[j] != '=' {
			return 0, false, 0, fallback()
		}
		j = skipSpace(s, j+1)
		if j >= len(s) || (s[j] != '"' && s[j] != '\'') {
			return 0, false, 0, fallback()
		}
		q := s[j]
		vend := strings.IndexByte(s[j+1:], q)
		if vend < 0 {
			return 0, false, 0, fallback()
		}
		val, err := decodeText(s[j+1:j+1+vend], attrValue)
		if err != nil {
			return 0, false, 0, err
		}
		j = j + 1 + vend + 1
		for _, a := range d.attrs[attrLo:] {
			if a.prefix == apfx && a.local == alocal {
				return 0, false, 0, fallback() // duplicate attribute
			}
		}
		if len(d.attrs)-attrLo >= maxAttrs {
			return 0, false, 0, fallback()
		}
		d.attrs = append(d.attrs, fattr{prefix: apfx, local: alocal, value: val})
		switch {
		case apfx == "xmlns":
			d.binds = append(d.binds, fbinding{prefix: alocal, uri: val})
		case apfx == "" && alocal == "xmlns":
			d.binds = append(d.binds, fbinding{prefix: "", uri: val})
		}
	}
	// etree resolves an attribute's prefix with the declarations of its
	// own element and its ancestors, whatever their order on the element.
	for ai := attrLo; ai < len(d.attrs); ai++ {
		if p := d.attrs[ai].prefix; p != "" {
			d.attrs[ai].ns = d.lookup(p)
		}
	}
	ns := d.lookup(pfx)
	n = int32(len(d.nodes))
	d.nodes = append(d.nodes, fnode{
		local: local, ns: ns, prefix: pfx, parent: parent,
		first: -1, last: -1, next: -1, more: -1, lastMore: -1,
		attrLo: int32(attrLo), attrHi: int32(len(d.attrs)),
	})
	p := &d.nodes[parent]
	p.hasTokens = true
	if p.last >= 0 {
		d.nodes[p.last].next = n
	} else {
		p.first = n
	}
	p.last = n
	return n, selfClose, j, nil
}

// lookup resolves a prefix ("" for the default namespace) in the open
// elements' declarations, innermost first; undeclared is "" as in etree.
func (d *fdoc) lookup(prefix string) string {
	for k := len(d.binds) - 1; k >= 0; k-- {
		if d.binds[k].prefix == prefix {
			return d.binds[k].uri
		}
	}
	return ""
}

// addText appends a character-data piece to node n; the first piece is
// kept inline so that a leaf costs no extra allocation.
func (d *fdoc) addText(n int32, txt string) {
	nd := &d.nodes[n]
	nd.hasTokens = true
	nd.ntext++
	if nd.ntext == 1 {
		nd.text = txt
		return
	}
	d.pieces = append(d.pieces, fpiece{s: txt, next: -1})
	k := int32(len(d.pieces) - 1)
	if nd.more < 0 {
		nd.more = k
	} else {
		d.pieces[nd.lastMore].next = k
	}
	nd.lastMore = k
}

// textOf is the etree textOf: every character-data piece directly inside
// n, joined.
func (d *fdoc) textOf(n int32) string {
	nd := &d.nodes[n]
	if nd.more < 0 {
		return nd.text
	}
	var b strings.Builder
	b.WriteString(nd.text)
	for k := nd.more; k >= 0; k = d.pieces[k].next {
		b.WriteString(d.pieces[k].s)
	}
	return b.String()
}

// isNameStart and isNameRest accept the ASCII subset of XML names; a
// non-ASCII name goes to etree.
func isNameStart(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_'
}

func isNameRest(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// scanName reads a qualified name at the start of s: prefix, local part
// and its length (0 when there is none, or when it has a shape etree would
// read differently: several colons, an empty part, non-ASCII bytes).
func scanName(s string) (prefix, local string, n int) {
	colon := -1
	for n < len(s) {
		c := s[n]
		switch {
		case c == ':':
			if colon >= 0 || n == 0 {
				return "", "", 0
			}
			colon = n
		case c >= utf8.RuneSelf:
			return "", "", 0
		case n == 0 || n == colon+1:
			// Each part starts with a letter or '_'; a digit, '.' or '-'
			// after the colon is valid XML but left to etree.
			if !isNameStart(c) {
				return "", "", 0
			}
		case !isNameRest(c):
			goto done
		}
		n++
	}
done:
	if n == 0 || colon == n-1 {
		return "", "", 0
	}
	if colon < 0 {
		return "", s[:n], n
	}
	return s[:colon], s[colon+1 : n], n
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
	rewrite := false
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&' && kind != cdataText, c == '\r':
				rewrite = true
			case c == '<' && kind == attrValue:
				return "", fallback()
			case c == ']' && kind == plainText && strings.HasPrefix(raw[i:], "]]>"):
				return "", fallback()
			case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
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
	env := d.root
	if n := &d.nodes[env]; n.local != "Envelope" || n.ns != NsSOAP {
		return nil, fallback()
	}
	r := &fastReply{d: d, header: -1, body: -1}
	for c := d.nodes[env].first; c >= 0; c = d.nodes[c].next {
		n := &d.nodes[c]
		if n.ns != NsSOAP {
			continue
		}
		switch n.local {
		case "Header":
			r.header = c
		case "Body":
			r.body = c
		}
	}
	if r.body < 0 {
		return nil, fallback()
	}
	if c := r.bodyChild(); c >= 0 && d.nodes[c].local == "Fault" && d.nodes[c].ns == NsSOAP {
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
		if d.nodes[c].local == local && d.nodes[c].ns == ns {
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
		if d.nodes[c].local == local && d.nodes[c].ns == ns {
			return c
		}
	}
	return -1
}

// xsiAttr is the package's xsiAttr.
func (d *fdoc) xsiAttr(n int32, local string) string {
	nd := &d.nodes[n]
	for k := nd.attrLo; k < nd.attrHi; k++ {
		a := &d.attrs[k]
		if a.local == local && a.prefix != "" && a.ns == NsXSI {
			return a.value
		}
	}
	return ""
}

// attr returns the value of the first attribute called name, whatever
// its prefix, as etree's SelectAttrValue(name, "") does.
func (d *fdoc) attr(n int32, name string) string {
	nd := &d.nodes[n]
	for k := nd.attrLo; k < nd.attrHi; k++ {
		if a := &d.attrs[k]; a.local == name {
			return a.value
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
	nd := &d.nodes[n]
	in := &Instance{ClassName: nd.local, ResourceURI: nd.ns}
	if in.ResourceURI == NsWSMan && nd.local == "XmlFragment" {
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
	slab := make([]Value, k)
	if in.Props == nil && k > 0 {
		in.Props = make([]Property, 0, k)
	}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		cn := &d.nodes[c]
		if cn.local == "Location" && cn.ns == NsCIM {
			continue
		}
		v, err := d.parseValue(c)
		if err != nil {
			return fmt.Errorf("parse %s.%s: %w", in.ClassName, cn.local, err)
		}
		if p := in.propExact(cn.local); p != nil {
			p.Values = append(p.Values, v)
			continue
		}
		slab[0] = v
		in.Props = append(in.Props, Property{Name: cn.local, Values: slab[:1:1]})
		slab = slab[1:]
	}
	return nil
}

// parseValue is parseValue.
func (d *fdoc) parseValue(c int32) (Value, error) {
	if isTrue(d.xsiAttr(c, "nil")) {
		return Value{Kind: KindNil}, nil
	}
	first := d.nodes[c].first
	if first < 0 {
		return Value{Kind: KindText, Text: d.textOf(c)}, nil
	}
	only := d.nodes[first].next < 0
	if only && d.nodes[first].first < 0 {
		if k := &d.nodes[first]; k.ns == NsCIM || k.ns == "" {
			switch k.local {
			case "Datetime":
				return Value{Kind: KindDatetime, Text: strings.TrimSpace(d.textOf(first))}, nil
			case "Interval":
				return Value{Kind: KindInterval, Text: strings.TrimSpace(d.textOf(first))}, nil
			}
		}
	}
	if d.child(c, NsAddressing, "Address") >= 0 && d.child(c, NsAddressing, "ReferenceParameters") >= 0 {
		epr, err := d.parseEPR(c)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindReference, Ref: epr}, nil
	}
	if only && (d.nodes[first].first >= 0 || strings.HasSuffix(d.xsiAttr(first, "type"), "_Type") || d.isEmptyObject(first)) {
		obj, err := d.parseInstance(first)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindObject, Object: obj}, nil
	}
	obj := &Instance{ClassName: d.nodes[c].local, ResourceURI: d.nodes[first].ns}
	if t := d.xsiAttr(c, "type"); t != "" {
		obj.TypeName = localPart(t)
		obj.ClassName = strings.TrimSuffix(obj.TypeName, "_Type")
	}
	if err := d.parseProps(obj, c); err != nil {
		return Value{}, err
	}
	return Value{Kind: KindObject, Object: obj}, nil
}

// isEmptyObject is isEmptyObject.
func (d *fdoc) isEmptyObject(n int32) bool {
	return !d.nodes[n].hasTokens && d.xsiAttr(n, "nil") == ""
}

// parseEPR is parseEPR.
func (d *fdoc) parseEPR(n int32) (*EndpointReference, error) {
	epr := &EndpointReference{}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		if d.nodes[c].ns != NsAddressing {
			continue
		}
		switch d.nodes[c].local {
		case "Address":
			epr.Address = strings.TrimSpace(d.textOf(c))
		case "ReferenceParameters":
			for r := d.nodes[c].first; r >= 0; r = d.nodes[r].next {
				if d.nodes[r].ns != NsWSMan {
					continue
				}
				switch d.nodes[r].local {
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
		if d.nodes[s].local != "Selector" || d.nodes[s].ns != NsWSMan {
			continue
		}
		sel := Selector{Name: d.attr(s, "Name")}
		if sel.Name == "" {
			return nil, fmt.Errorf("selector without a Name attribute")
		}
		if d.nodes[s].first >= 0 {
			for k := d.nodes[s].first; k >= 0; k = d.nodes[k].next {
				if d.nodes[k].local == "EndpointReference" && d.nodes[k].ns == NsAddressing {
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
	p := &page{}
	hasContext := false
	for c := d.nodes[resp].first; c >= 0; c = d.nodes[c].next {
		ns := d.nodes[c].ns
		if ns != NsEnumeration && ns != NsWSMan {
			continue
		}
		switch d.nodes[c].local {
		case "EnumerationContext":
			hasContext = true
			p.context = strings.TrimSpace(d.textOf(c))
		case "EndOfSequence":
			p.done = true
		case "Items":
			items, err := d.parseItems(c)
			if err != nil {
				return nil, err
			}
			p.items = append(p.items, items...)
		}
	}
	if !hasContext || p.context == "" {
		p.done = true
	}
	return p, nil
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
		switch cn := &d.nodes[c]; {
		case cn.local == "Item" && cn.ns == NsWSMan:
			for g := cn.first; g >= 0; g = d.nodes[g].next {
				if d.nodes[g].local == "EndpointReference" && d.nodes[g].ns == NsAddressing {
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
		case cn.local == "EndpointReference" && cn.ns == NsAddressing:
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
