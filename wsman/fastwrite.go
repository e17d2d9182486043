package wsman

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// This file writes request envelopes straight into a byte slice. The
// output is byte for byte what render(c.envelope(...)) produces with etree
// (the golden files and the differential tests in fastwrite_test.go hold
// both to that), at a fraction of the allocations: building a Get through
// etree takes over a hundred.

// appendEnvelope appends the envelope of r, as c.envelope renders it, to
// dst. A body given as an etree element is rendered by etree itself; one
// given as bodyXML bytes (already escaped) is copied.
func (c *Client) appendEnvelope(dst []byte, r *request, bodyXML []byte, extraNS ...string) []byte {
	dst = append(dst, `<s:Envelope xmlns:s="`+NsSOAP+`" xmlns:a="`+NsAddressing+`" xmlns:w="`+NsWSMan+`" xmlns:p="`+NsWSMV+`"`...)
	for i := 0; i+1 < len(extraNS); i += 2 {
		dst = append(dst, " xmlns:"...)
		dst = append(dst, extraNS[i]...)
		dst = append(dst, `="`...)
		dst = appendEscaped(dst, extraNS[i+1], escAttr)
		dst = append(dst, '"')
	}
	dst = append(dst, "><s:Header>"...)
	dst = appendTextElem(dst, "a:Action", ` s:mustUnderstand="true"`, r.action)
	locale := c.Locale
	if locale == "" {
		locale = DefaultLocale
	}
	dst = append(dst, `<p:DataLocale s:mustUnderstand="false" xml:lang="`...)
	dst = appendEscaped(dst, locale, escAttr)
	dst = append(dst, `"/><w:Locale s:mustUnderstand="false" xml:lang="`...)
	dst = appendEscaped(dst, locale, escAttr)
	dst = append(dst, `"/><w:MaxEnvelopeSize s:mustUnderstand="true">`...)
	size := c.MaxEnvelopeSize
	if size <= 0 {
		size = DefaultMaxEnvelopeSize
	}
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, "</w:MaxEnvelopeSize>"...)
	dst = appendTextElem(dst, "a:MessageID", "", r.messageID)
	timeout := c.OperationTimeout
	if timeout <= 0 {
		timeout = DefaultOperationTimeout
	}
	dst = append(dst, "<w:OperationTimeout>"...)
	dst = appendDuration(dst, timeout)
	dst = append(dst, "</w:OperationTimeout>"...)
	dst = append(dst, `<a:ReplyTo><a:Address s:mustUnderstand="true">`+AddressAnonymous+`</a:Address></a:ReplyTo>`...)
	dst = appendTextElem(dst, "w:ResourceURI", ` s:mustUnderstand="true"`, r.resourceURI)
	if c.SessionID != "" {
		dst = appendTextElem(dst, "p:SessionId", ` s:mustUnderstand="false"`, c.SessionID)
	}
	dst = appendTextElem(dst, "a:To", "", c.Endpoint)
	if r.opts != nil {
		if len(r.opts.Selectors) > 0 {
			dst = appendSelectorSet(dst, r.opts.Selectors)
		}
		if len(r.opts.OptionSet) > 0 {
			dst = append(dst, "<w:OptionSet>"...)
			for _, o := range r.opts.OptionSet {
				dst = append(dst, `<w:Option Name="`...)
				dst = appendEscaped(dst, o.Name, escAttr)
				dst = append(dst, '"')
				if o.Type != "" {
					dst = append(dst, ` Type="`...)
					dst = appendEscaped(dst, o.Type, escAttr)
					dst = append(dst, '"')
				}
				dst = appendTextTail(dst, "w:Option", xmlSafe(o.Value))
			}
			dst = append(dst, "</w:OptionSet>"...)
		}
	}
	dst = append(dst, "</s:Header>"...)
	switch {
	case r.body != nil:
		dst = append(dst, "<s:Body>"...)
		dst = appendElement(dst, r.body)
		dst = append(dst, "</s:Body>"...)
	case len(bodyXML) > 0:
		dst = append(dst, "<s:Body>"...)
		dst = append(dst, bodyXML...)
		dst = append(dst, "</s:Body>"...)
	default:
		dst = append(dst, "<s:Body/>"...)
	}
	return append(dst, "</s:Envelope>"...)
}

// appendDuration appends FormatDuration(d) (never empty, never escaped)
// without its fmt.Sprintf.
func appendDuration(dst []byte, d time.Duration) []byte {
	if d < 0 {
		dst = append(dst, '-')
		d = -d
	}
	ms := d.Milliseconds()
	dst = append(dst, "PT"...)
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	if frac < 0 {
		// Only for math.MinInt64, whose negation is itself: %03d pads
		// after the sign.
		dst = append(dst, '.', '-')
		frac = -frac
		if frac < 10 {
			dst = append(dst, '0')
		}
	} else {
		dst = append(dst, '.')
		if frac < 100 {
			dst = append(dst, '0')
		}
		if frac < 10 {
			dst = append(dst, '0')
		}
	}
	dst = strconv.AppendInt(dst, frac, 10)
	return append(dst, 'S')
}

// identifyXML is identifyEnvelope rendered.
const identifyXML = `<s:Envelope xmlns:s="` + NsSOAP + `" xmlns:wsmid="` + NsIdentity + `"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>`

// appendElement renders an etree element with render's settings.
func appendElement(dst []byte, el *etree.Element) []byte {
	buf := bytes.NewBuffer(dst)
	el.WriteTo(buf, &etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true})
	return buf.Bytes()
}

// appendTextElem appends <tag attrs>text</tag>, or <tag attrs/> for empty
// text as etree writes an element without children; attrs is raw markup.
func appendTextElem(dst []byte, tag, attrs, text string) []byte {
	dst = append(dst, '<')
	dst = append(dst, tag...)
	dst = append(dst, attrs...)
	return appendTextTail(dst, tag, text)
}

// appendTextTail closes an open start tag with text and the end tag.
func appendTextTail(dst []byte, tag, text string) []byte {
	if text == "" {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = appendEscaped(dst, text, escText)
	dst = append(dst, "</"...)
	dst = append(dst, tag...)
	return append(dst, '>')
}

// appendSelectorSet appends a w:SelectorSet as writeSelectorSet builds it.
func appendSelectorSet(dst []byte, sels []Selector) []byte {
	dst = append(dst, "<w:SelectorSet>"...)
	for _, s := range sels {
		dst = append(dst, `<w:Selector Name="`...)
		dst = appendEscaped(dst, s.Name, escAttr)
		dst = append(dst, '"')
		if s.EPR != nil {
			dst = append(dst, "><a:EndpointReference>"...)
			dst = appendEPR(dst, s.EPR)
			dst = append(dst, "</a:EndpointReference></w:Selector>"...)
			continue
		}
		dst = appendTextTail(dst, "w:Selector", xmlSafe(s.Value))
	}
	return append(dst, "</w:SelectorSet>"...)
}

// appendEPR appends the children writeEPR creates.
func appendEPR(dst []byte, epr *EndpointReference) []byte {
	addr := epr.Address
	if addr == "" {
		addr = AddressAnonymous
	}
	dst = appendTextElem(dst, "a:Address", "", addr)
	dst = append(dst, "<a:ReferenceParameters>"...)
	dst = appendTextElem(dst, "w:ResourceURI", "", epr.ResourceURI)
	if len(epr.Selectors) > 0 {
		dst = appendSelectorSet(dst, epr.Selectors)
	}
	return append(dst, "</a:ReferenceParameters>"...)
}

// appendEnumerateBody appends the n:Enumerate element that
// enumeration.enumerateBody builds.
func appendEnumerateBody(dst []byte, o *EnumerateOptions) []byte {
	start := len(dst)
	dst = append(dst, "<n:Enumerate>"...)
	if o.Optimize {
		dst = append(dst, "<w:OptimizeEnumeration/>"...)
		if o.MaxElements > 0 {
			dst = append(dst, "<w:MaxElements>"...)
			dst = strconv.AppendInt(dst, int64(o.MaxElements), 10)
			dst = append(dst, "</w:MaxElements>"...)
		}
	}
	switch o.Mode {
	case EnumerateObjectAndEPR:
		dst = append(dst, "<w:EnumerationMode>EnumerateObjectAndEPR</w:EnumerationMode>"...)
	case EnumerateEPR:
		dst = append(dst, "<w:EnumerationMode>EnumerateEPR</w:EnumerationMode>"...)
	}
	switch {
	case o.WQL != "":
		dst = append(dst, `<w:Filter Dialect="`+DialectWQL+`">`...)
		dst = appendEscaped(dst, o.WQL, escText)
		dst = append(dst, "</w:Filter>"...)
	case len(o.SelectorFilter) > 0:
		dst = append(dst, `<w:Filter Dialect="`+DialectSelector+`">`...)
		dst = appendSelectorSet(dst, o.SelectorFilter)
		dst = append(dst, "</w:Filter>"...)
	}
	if len(dst)-start == len("<n:Enumerate>") {
		// etree writes a childless element self-closed.
		return append(dst[:start], "<n:Enumerate/>"...)
	}
	return append(dst, "</n:Enumerate>"...)
}

// appendPullBody appends the n:Pull element that enumeration.pull builds.
func appendPullBody(dst []byte, enumCtx string, maxElements int) []byte {
	dst = append(dst, "<n:Pull>"...)
	dst = appendTextElem(dst, "n:EnumerationContext", "", enumCtx)
	if maxElements > 0 {
		dst = append(dst, "<n:MaxElements>"...)
		dst = strconv.AppendInt(dst, int64(maxElements), 10)
		dst = append(dst, "</n:MaxElements>"...)
	}
	return append(dst, "</n:Pull>"...)
}

// appendReleaseBody appends the n:Release element that enumeration.release
// builds.
func appendReleaseBody(dst []byte, enumCtx string) []byte {
	dst = append(dst, "<n:Release>"...)
	dst = appendTextElem(dst, "n:EnumerationContext", "", enumCtx)
	return append(dst, "</n:Release>"...)
}

// escMode selects etree's canonical escaping for text or attribute values.
type escMode uint8

const (
	escText escMode = iota
	escAttr
)

// appendEscaped escapes s as etree's escapeString does in canonical text
// or canonical attribute mode: &, < always; > in text; " in attributes;
// tab, line feed and carriage return as character references in
// attributes, carriage return also in text; anything outside the XML
// character range, and each byte of invalid UTF-8, as U+FFFD.
func appendEscaped(dst []byte, s string, m escMode) []byte {
	mask := uint8(escTextByte)
	if m == escAttr {
		mask = escAttrByte
	}
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if escClass[c]&mask == 0 {
			i++
			continue
		}
		var esc string
		width := 1
		if c < utf8.RuneSelf {
			switch c {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '"':
				esc = "&quot;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default: // other control characters
				esc = "\uFFFD"
			}
		} else {
			var r rune
			r, width = utf8.DecodeRuneInString(s[i:])
			if (r != utf8.RuneError || width != 1) && xmlCharRange(r) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i += width
		last = i
	}
	return append(dst, s[last:]...)
}

// Bits of escClass: which bytes appendEscaped must look at in text and in
// attribute values.
const (
	escTextByte = 1 << iota
	escAttrByte
)

var escClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c < 0x20 && c != '\t' && c != '\n' || c == '\r' || c >= utf8.RuneSelf {
			t[c] = escTextByte | escAttrByte
		}
	}
	t['&'] = escTextByte | escAttrByte
	t['<'] = escTextByte | escAttrByte
	t['>'] = escTextByte
	t['"'] = escAttrByte
	t['\t'] = escAttrByte
	t['\n'] = escAttrByte
	return t
}()

// xmlCharRange is the Char production of XML 1.0 (§2.2).
func xmlCharRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// appendInstance appends the element Instance.Element renders, as render
// writes it.
func appendInstance(dst []byte, in *Instance) []byte {
	var tag string
	if in.Fragment {
		tag = "w:XmlFragment"
		dst = append(dst, `<w:XmlFragment xmlns:w="`+NsWSMan+`"`...)
	} else {
		tag = "p:" + in.ClassName
		dst = append(dst, '<')
		dst = append(dst, tag...)
		dst = append(dst, ` xmlns:p="`...)
		dst = appendEscaped(dst, in.ResourceURI, escAttr)
		dst = append(dst, '"')
	}
	needXSI, needCIM := in.TypeName != "", false
	for _, p := range in.Props {
		for _, v := range p.Values {
			switch v.Kind {
			case KindNil:
				needXSI = true
			case KindDatetime, KindInterval:
				needCIM = true
			}
		}
	}
	if needXSI {
		dst = append(dst, ` xmlns:xsi="`+NsXSI+`"`...)
	}
	if needCIM && !in.Fragment {
		dst = append(dst, ` xmlns:cim="`+NsCIM+`"`...)
	}
	if in.TypeName != "" && !in.Fragment {
		dst = append(dst, ` xsi:type="p:`...)
		dst = appendEscaped(dst, in.TypeName, escAttr)
		dst = append(dst, '"')
	}
	empty := true
	prefix, cimPrefix := "p:", "cim:"
	if in.Fragment {
		prefix, cimPrefix = "", ""
	}
	for _, p := range in.Props {
		for _, v := range p.Values {
			if empty {
				dst = append(dst, '>')
				empty = false
			}
			dst = append(dst, '<')
			dst = append(dst, prefix...)
			dst = append(dst, p.Name...)
			switch v.Kind {
			case KindText:
				dst = appendTextTailName(dst, prefix, p.Name, xmlSafe(v.Text))
				continue
			case KindNil:
				dst = append(dst, ` xsi:nil="true"/>`...)
				continue
			case KindDatetime, KindInterval:
				dst = append(dst, '>')
				name := "Datetime"
				if v.Kind == KindInterval {
					name = "Interval"
				}
				dst = appendTextElem(dst, cimPrefix+name, "", xmlSafe(v.Text))
			case KindObject:
				if v.Object == nil {
					dst = append(dst, "/>"...)
					continue
				}
				dst = append(dst, '>')
				dst = appendInstance(dst, v.Object)
			case KindReference:
				if v.Ref == nil {
					dst = append(dst, "/>"...)
					continue
				}
				dst = append(dst, ` xmlns:a="`+NsAddressing+`" xmlns:w="`+NsWSMan+`">`...)
				dst = appendEPR(dst, v.Ref)
			default:
				dst = append(dst, "/>"...)
				continue
			}
			dst = append(dst, "</"...)
			dst = append(dst, prefix...)
			dst = append(dst, p.Name...)
			dst = append(dst, '>')
		}
	}
	if empty {
		return append(dst, "/>"...)
	}
	dst = append(dst, "</"...)
	dst = append(dst, tag...)
	return append(dst, '>')
}

// appendTextTailName is appendTextTail for the tag prefix+name, without
// building that string.
func appendTextTailName(dst []byte, prefix, name, text string) []byte {
	if text == "" {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = appendEscaped(dst, text, escText)
	dst = append(dst, "</"...)
	dst = append(dst, prefix...)
	dst = append(dst, name...)
	return append(dst, '>')
}
