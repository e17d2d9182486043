package transport

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// nsAddressing is WS-Addressing 2004/08, the namespace of MessageID,
// RelatesTo and To. (Package wsman has it as NsAddressing; it imports us.)
const nsAddressing = "http://schemas.xmlsoap.org/ws/2004/08/addressing"

// xmlToken is one markup or text token of a document, located by byte
// offsets into the original bytes, so that rewriting keeps every byte we do
// not mean to change (quotes, prefixes, escapes, self-closing tags).
type xmlToken struct {
	start, end int
	kind       int // tokStart, tokEnd, tokText, tokOther
	// ns and local name the element of a tokStart or tokEnd, with its
	// namespace resolved from the xmlns declarations in scope.
	ns, local string
	depth     int // element depth of a tokStart/tokEnd (root is 0)
}

const (
	tokStart = iota
	tokEnd
	tokText
	tokOther
)

// scanXML splits b into located tokens. Self-closing tags yield a start
// token and a zero-width end token.
func scanXML(b []byte) ([]xmlToken, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var (
		toks   []xmlToken
		scopes []map[string]string // prefix -> namespace, innermost last
		names  [][2]string
		prev   int
	)
	resolve := func(prefix string) string {
		for i := len(scopes) - 1; i >= 0; i-- {
			if ns, ok := scopes[i][prefix]; ok {
				return ns
			}
		}
		return ""
	}
	for {
		t, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		end := int(d.InputOffset())
		tok := xmlToken{start: prev, end: end, kind: tokOther}
		switch t := t.(type) {
		case xml.StartElement:
			scope := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				}
			}
			scopes = append(scopes, scope)
			tok.kind, tok.ns, tok.local, tok.depth = tokStart, resolve(t.Name.Space), t.Name.Local, len(names)
			names = append(names, [2]string{tok.ns, tok.local})
		case xml.EndElement:
			if len(names) == 0 {
				return nil, errors.New("unbalanced end tag")
			}
			n := names[len(names)-1]
			names, scopes = names[:len(names)-1], scopes[:len(scopes)-1]
			tok.kind, tok.ns, tok.local, tok.depth = tokEnd, n[0], n[1], len(names)
		case xml.CharData:
			tok.kind = tokText
		}
		toks = append(toks, tok)
		prev = end
	}
	if len(names) != 0 {
		return nil, errors.New("unclosed element")
	}
	if prev != len(b) {
		return nil, errors.New("trailing bytes after the document")
	}
	return toks, nil
}

const indentUnit = "  "

func hasElement(toks []xmlToken) bool {
	for _, t := range toks {
		if t.kind == tokStart {
			return true
		}
	}
	return false
}

// indentXML puts each tag of a compact document on its own line. It only
// inserts whitespace where a tag directly follows another, so compactXML
// undoes it exactly; ok is false (and b is returned as is) when b is not
// XML or already holds whitespace that compacting would lose.
func indentXML(b []byte) (out []byte, ok bool) {
	toks, err := scanXML(b)
	if err != nil || !hasElement(toks) {
		return b, false
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/4)
	for i, t := range toks {
		if i > 0 && t.start < t.end && t.kind != tokText && toks[i-1].kind != tokText {
			// Keep <a></a> together on one line.
			prev := toks[i-1]
			if !(t.kind == tokEnd && prev.kind == tokStart) {
				depth := 0
				if t.kind == tokStart || t.kind == tokEnd {
					depth = t.depth
				} else if prev.kind == tokStart {
					depth = prev.depth + 1
				} else if prev.kind == tokEnd {
					depth = prev.depth
				}
				buf.WriteByte('\n')
				buf.WriteString(strings.Repeat(indentUnit, depth))
			}
		}
		buf.Write(b[t.start:t.end])
	}
	buf.WriteByte('\n')
	out = buf.Bytes()
	if !bytes.Equal(compactXML(out), b) {
		return b, false
	}
	return out, true
}

// compactXML removes the whitespace indentXML inserted: whitespace-only
// text that starts with a newline and sits between two tags, other than
// the content of an otherwise empty element.
func compactXML(b []byte) []byte {
	toks, err := scanXML(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		return b
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	var buf bytes.Buffer
	buf.Grow(len(b))
	for i, t := range toks {
		if t.kind == tokText && i > 0 && i < len(toks)-1 &&
			toks[i-1].kind != tokText && toks[i+1].kind != tokText &&
			!(toks[i-1].kind == tokStart && toks[i+1].kind == tokEnd) {
			s := b[t.start:t.end]
			if len(s) > 0 && s[0] == '\n' && len(bytes.TrimLeft(s, "\n ")) == 0 {
				continue
			}
		}
		buf.Write(b[t.start:t.end])
	}
	return buf.Bytes()
}

// xmlLeaf is the text content of one element with no child elements.
type xmlLeaf struct {
	ns, local  string
	start, end int // byte range of the content between the tags
}

// leaves lists the elements of b that hold only text (or nothing).
func leaves(b []byte) ([]xmlLeaf, error) {
	toks, err := scanXML(b)
	if err != nil {
		return nil, err
	}
	var out []xmlLeaf
	for i, t := range toks {
		if t.kind != tokStart {
			continue
		}
		j := i + 1
		for j < len(toks) && toks[j].kind != tokStart && toks[j].kind != tokEnd {
			j++
		}
		if j < len(toks) && toks[j].kind == tokEnd && toks[j].depth == t.depth {
			out = append(out, xmlLeaf{ns: t.ns, local: t.local, start: t.end, end: toks[j].start})
		}
	}
	return out, nil
}

// rewriteLeaves replaces the content of every text-only element for which
// f returns true with the replacement f gives. It returns b unchanged if b
// is not XML.
func rewriteLeaves(b []byte, f func(ns, local, text string) (string, bool)) []byte {
	ls, err := leaves(b)
	if err != nil {
		return b
	}
	var buf bytes.Buffer
	last := 0
	for _, l := range ls {
		repl, ok := f(l.ns, l.local, string(b[l.start:l.end]))
		if !ok {
			continue
		}
		buf.Write(b[last:l.start])
		buf.WriteString(repl)
		last = l.end
	}
	if last == 0 {
		return b
	}
	buf.Write(b[last:])
	return buf.Bytes()
}

// leafText returns the text of the first text-only element named ns:local.
func leafText(b []byte, ns, local string) (string, bool) {
	ls, err := leaves(b)
	if err != nil {
		return "", false
	}
	for _, l := range ls {
		if l.ns == ns && l.local == local {
			return string(b[l.start:l.end]), true
		}
	}
	return "", false
}
