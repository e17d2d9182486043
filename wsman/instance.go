package wsman

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// Instance is a WMI (CIM) object as it travels in WS-Man bodies: the
// element of a GetResponse, an Enumerate item, a method's _INPUT or _OUTPUT,
// or an embedded object. It keeps the properties in wire order so that an
// instance read with Get can be written back with Put unchanged but for the
// properties the caller patched (as Set-WSManInstance does).
type Instance struct {
	// ClassName is the element's local name: "Win32_Service",
	// "BitsClientJob", "CreateJob_OUTPUT".
	ClassName string
	// ResourceURI is the element's namespace URI, which for WMI is the class
	// resource URI (…/wmi/root/cimv2/Win32_Service).
	ResourceURI string
	// TypeName is the local part of xsi:type ("Win32_Service_Type"), if any.
	TypeName string
	// Props are the properties in wire order. A WS-Man array is one
	// Property with several Values.
	Props []Property
	// Fragment is true for a w:XmlFragment item (WQL with a property list),
	// whose children are unqualified.
	Fragment bool
}

// Property is one named property of an Instance.
type Property struct {
	Name   string
	Values []Value
}

// ValueKind says what a Value holds.
type ValueKind int

// Kinds of Value.
const (
	KindText      ValueKind = iota // plain text: strings, numbers, booleans
	KindNil                        // xsi:nil="true"
	KindDatetime                   // <cim:Datetime>
	KindInterval                   // <cim:Interval>
	KindObject                     // embedded object
	KindReference                  // CIM REF: an endpoint reference
)

// Value is one value of a property.
type Value struct {
	Kind ValueKind
	// Text is the text, or the lexical form of a datetime or interval.
	Text string
	// Object is the embedded object for KindObject.
	Object *Instance
	// Ref is the endpoint reference for KindReference.
	Ref *EndpointReference
}

// EndpointReference is a WS-Addressing EPR that names a resource instance.
type EndpointReference struct {
	Address     string
	ResourceURI string
	Selectors   []Selector
}

// Selector is one key of a SelectorSet. A selector value can itself be an
// EPR (MS-WSMV 3.1.4.1.2).
type Selector struct {
	Name  string
	Value string
	EPR   *EndpointReference
}

// Errors returned by Instance accessors.
var (
	// ErrNoProperty is returned when the instance has no property of that name.
	ErrNoProperty = errors.New("no such property")
	// ErrNilValue is returned when the property is xsi:nil.
	ErrNilValue = errors.New("property is nil")
)

// ParseInstance reads an instance element (any prefix). Children are matched
// by namespace URI; cim:Location EPRs are skipped.
func ParseInstance(el *etree.Element) (*Instance, error) {
	if el == nil {
		return nil, fmt.Errorf("parse instance: %w: no element", ErrProtocol)
	}
	in := &Instance{ClassName: el.Tag, ResourceURI: el.NamespaceURI()}
	if in.ResourceURI == NsWSMan && el.Tag == "XmlFragment" {
		in.Fragment = true
	}
	if t := xsiAttr(el, "type"); t != "" {
		in.TypeName = localPart(t)
	}
	if err := parseProps(in, el); err != nil {
		return nil, err
	}
	return in, nil
}

// parseProps appends every property child of el to in.
func parseProps(in *Instance, el *etree.Element) error {
	// One slab of values and properties for all scalar properties saves
	// two allocations per property; arrays grow out of it.
	n := 0
	for _, tok := range el.Child {
		if _, ok := tok.(*etree.Element); ok {
			n++
		}
	}
	slab := make([]Value, n)
	if in.Props == nil && n > 0 {
		in.Props = make([]Property, 0, n)
	}
	for _, tok := range el.Child {
		c, ok := tok.(*etree.Element)
		if !ok {
			continue
		}
		if c.Tag == "Location" && c.NamespaceURI() == NsCIM {
			continue
		}
		v, err := parseValue(c)
		if err != nil {
			return fmt.Errorf("parse %s.%s: %w", in.ClassName, c.Tag, err)
		}
		// Arrays are repeated elements, normally adjacent; grouping by exact
		// name keeps a non-adjacent repeat in the same property too.
		if p := in.propExact(c.Tag); p != nil {
			p.Values = append(p.Values, v)
			continue
		}
		slab[0] = v
		in.Props = append(in.Props, Property{Name: c.Tag, Values: slab[:1:1]})
		slab = slab[1:]
	}
	return nil
}

func (in *Instance) propExact(name string) *Property {
	if n := len(in.Props); n > 0 && in.Props[n-1].Name == name {
		return &in.Props[n-1]
	}
	for i := range in.Props {
		if in.Props[i].Name == name {
			return &in.Props[i]
		}
	}
	return nil
}

// parseValue reads one property element.
func parseValue(c *etree.Element) (Value, error) {
	if isTrue(xsiAttr(c, "nil")) {
		return Value{Kind: KindNil}, nil
	}
	var kids []*etree.Element
	for _, tok := range c.Child {
		if k, ok := tok.(*etree.Element); ok {
			kids = append(kids, k)
		}
	}
	if len(kids) == 0 {
		return Value{Kind: KindText, Text: textOf(c)}, nil
	}
	if len(kids) == 1 && len(elementKids(kids[0])) == 0 {
		k := kids[0]
		if ns := k.NamespaceURI(); ns == NsCIM || ns == "" {
			switch k.Tag {
			case "Datetime":
				return Value{Kind: KindDatetime, Text: strings.TrimSpace(textOf(k))}, nil
			case "Interval":
				return Value{Kind: KindInterval, Text: strings.TrimSpace(textOf(k))}, nil
			}
		}
	}
	if hasAddressing(kids, "Address") && hasAddressing(kids, "ReferenceParameters") {
		epr, err := parseEPR(c)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindReference, Ref: epr}, nil
	}
	// An embedded object comes either as one typed child element holding
	// the properties (<p:Files><q:BitsClientFile xsi:type=…>…) or as the
	// property element itself holding them (<p:Files xsi:type=…><q:…>).
	if len(kids) == 1 && (len(elementKids(kids[0])) > 0 || strings.HasSuffix(xsiAttr(kids[0], "type"), "_Type") || isEmptyObject(kids[0])) {
		obj, err := ParseInstance(kids[0])
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindObject, Object: obj}, nil
	}
	obj := &Instance{ClassName: c.Tag, ResourceURI: kids[0].NamespaceURI()}
	if t := xsiAttr(c, "type"); t != "" {
		obj.TypeName = localPart(t)
		obj.ClassName = strings.TrimSuffix(obj.TypeName, "_Type")
	}
	if err := parseProps(obj, c); err != nil {
		return Value{}, err
	}
	return Value{Kind: KindObject, Object: obj}, nil
}

// isEmptyObject reports whether el is an embedded object without
// properties: no children, no text, not nil.
func isEmptyObject(el *etree.Element) bool {
	return len(el.Child) == 0 && xsiAttr(el, "nil") == ""
}

func elementKids(el *etree.Element) []*etree.Element {
	var out []*etree.Element
	for _, tok := range el.Child {
		if k, ok := tok.(*etree.Element); ok {
			out = append(out, k)
		}
	}
	return out
}

func hasAddressing(kids []*etree.Element, tag string) bool {
	for _, k := range kids {
		if k.Tag == tag && k.NamespaceURI() == NsAddressing {
			return true
		}
	}
	return false
}

// textOf concatenates the character data directly inside el (text split by
// comments or CDATA sections is joined).
func textOf(el *etree.Element) string {
	var first string
	var b *strings.Builder
	n := 0
	for _, tok := range el.Child {
		cd, ok := tok.(*etree.CharData)
		if !ok {
			continue
		}
		switch n {
		case 0:
			first = cd.Data
		case 1:
			b = &strings.Builder{}
			b.WriteString(first)
			b.WriteString(cd.Data)
		default:
			b.WriteString(cd.Data)
		}
		n++
	}
	if n > 1 {
		return b.String()
	}
	return first
}

// xsiAttr returns the value of the xsi:<local> attribute of el, matched by
// namespace URI.
func xsiAttr(el *etree.Element, local string) string {
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Key == local && a.Space != "" && a.NamespaceURI() == NsXSI {
			return a.Value
		}
	}
	return ""
}

func isTrue(s string) bool {
	s = strings.TrimSpace(s)
	return s == "true" || s == "1"
}

func localPart(qname string) string {
	if i := strings.IndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// parseEPR reads an element holding a:Address and a:ReferenceParameters
// (an EPR, a ResourceCreated, a reference property).
func parseEPR(el *etree.Element) (*EndpointReference, error) {
	epr := &EndpointReference{}
	for _, c := range elementKids(el) {
		if c.NamespaceURI() != NsAddressing {
			continue
		}
		switch c.Tag {
		case "Address":
			epr.Address = strings.TrimSpace(textOf(c))
		case "ReferenceParameters":
			for _, r := range elementKids(c) {
				if r.NamespaceURI() != NsWSMan {
					continue
				}
				switch r.Tag {
				case "ResourceURI":
					epr.ResourceURI = strings.TrimSpace(textOf(r))
				case "SelectorSet":
					sels, err := parseSelectorSet(r)
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

// parseSelectorSet reads a w:SelectorSet; a selector holding an
// a:EndpointReference gets it as EPR.
func parseSelectorSet(el *etree.Element) ([]Selector, error) {
	var sels []Selector
	for _, s := range elementKids(el) {
		if s.Tag != "Selector" || s.NamespaceURI() != NsWSMan {
			continue
		}
		sel := Selector{Name: unqualifiedAttr(s, "Name")}
		if sel.Name == "" {
			return nil, fmt.Errorf("selector without a Name attribute")
		}
		if kids := elementKids(s); len(kids) > 0 {
			for _, k := range kids {
				if k.Tag == "EndpointReference" && k.NamespaceURI() == NsAddressing {
					epr, err := parseEPR(k)
					if err != nil {
						return nil, err
					}
					sel.EPR = epr
				}
			}
		} else {
			sel.Value = textOf(s)
		}
		sels = append(sels, sel)
	}
	return sels, nil
}

// NewInstance returns an empty instance of the class at resourceURI; the
// class name is the last path segment of the URI.
func NewInstance(resourceURI string) *Instance {
	if i := strings.IndexByte(resourceURI, '?'); i >= 0 {
		resourceURI = resourceURI[:i]
	}
	return &Instance{ClassName: resourceURI[strings.LastIndexByte(resourceURI, '/')+1:], ResourceURI: resourceURI}
}

// Property returns the named property; names match case-insensitively, as WMI does.
func (in *Instance) Property(name string) (*Property, bool) {
	for i := range in.Props {
		if in.Props[i].Name == name {
			return &in.Props[i], true
		}
	}
	for i := range in.Props {
		if strings.EqualFold(in.Props[i].Name, name) {
			return &in.Props[i], true
		}
	}
	return nil, false
}

// scalar returns the single non-nil value of a property.
func (in *Instance) scalar(name string) (*Value, error) {
	p, ok := in.Property(name)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w", in.ClassName, name, ErrNoProperty)
	}
	switch {
	case len(p.Values) == 0:
		return nil, fmt.Errorf("%s.%s: %w", in.ClassName, p.Name, ErrNilValue)
	case len(p.Values) > 1:
		return nil, fmt.Errorf("%s.%s: array of %d values where a scalar was expected", in.ClassName, p.Name, len(p.Values))
	}
	v := &p.Values[0]
	switch v.Kind {
	case KindNil:
		return nil, fmt.Errorf("%s.%s: %w", in.ClassName, p.Name, ErrNilValue)
	case KindObject:
		return nil, fmt.Errorf("%s.%s: is an embedded object, not a scalar", in.ClassName, p.Name)
	case KindReference:
		return nil, fmt.Errorf("%s.%s: is a reference, not a scalar", in.ClassName, p.Name)
	}
	return v, nil
}

// String returns the text of a scalar property.
func (in *Instance) String(name string) (string, error) {
	v, err := in.scalar(name)
	if err != nil {
		return "", err
	}
	return v.Text, nil
}

// Uint64 parses a scalar unsigned property exactly (no float rounding).
func (in *Instance) Uint64(name string) (uint64, error) {
	v, err := in.scalar(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v.Text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s.%s: %q is not an unsigned integer: %w", in.ClassName, name, v.Text, err)
	}
	return n, nil
}

// Int64 parses a scalar signed property exactly.
func (in *Instance) Int64(name string) (int64, error) {
	v, err := in.scalar(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v.Text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s.%s: %q is not an integer: %w", in.ClassName, name, v.Text, err)
	}
	return n, nil
}

// Bool parses a scalar boolean property ("true"/"false", also "1"/"0").
func (in *Instance) Bool(name string) (bool, error) {
	v, err := in.scalar(name)
	if err != nil {
		return false, err
	}
	switch s := strings.TrimSpace(v.Text); {
	case s == "1" || strings.EqualFold(s, "true"):
		return true, nil
	case s == "0" || strings.EqualFold(s, "false"):
		return false, nil
	}
	return false, fmt.Errorf("%s.%s: %q is not a boolean", in.ClassName, name, v.Text)
}

// Datetime parses a cim:Datetime property (RFC 3339 with any fraction or offset).
func (in *Instance) Datetime(name string) (time.Time, error) {
	v, err := in.scalar(name)
	if err != nil {
		return time.Time{}, err
	}
	t, err := ParseDatetime(v.Text)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s.%s: %w", in.ClassName, name, err)
	}
	return t, nil
}

// Interval parses a cim:Interval (xs:duration) property.
func (in *Instance) Interval(name string) (time.Duration, error) {
	v, err := in.scalar(name)
	if err != nil {
		return 0, err
	}
	d, err := ParseDuration(v.Text)
	if err != nil {
		return 0, fmt.Errorf("%s.%s: %w", in.ClassName, name, err)
	}
	return d, nil
}

// Strings returns every value of an array property (a scalar is a one-item
// array; a nil array is empty).
func (in *Instance) Strings(name string) ([]string, error) {
	p, ok := in.Property(name)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w", in.ClassName, name, ErrNoProperty)
	}
	out := make([]string, 0, len(p.Values))
	for _, v := range p.Values {
		switch v.Kind {
		case KindNil:
			continue
		case KindObject, KindReference:
			return nil, fmt.Errorf("%s.%s: holds objects or references, not text", in.ClassName, p.Name)
		}
		out = append(out, v.Text)
	}
	return out, nil
}

// Objects returns the embedded objects of a property.
func (in *Instance) Objects(name string) ([]*Instance, error) {
	p, ok := in.Property(name)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w", in.ClassName, name, ErrNoProperty)
	}
	out := make([]*Instance, 0, len(p.Values))
	for _, v := range p.Values {
		switch v.Kind {
		case KindNil:
			continue
		case KindObject:
			out = append(out, v.Object)
		default:
			return nil, fmt.Errorf("%s.%s: holds %s values, not embedded objects", in.ClassName, p.Name, v.Kind)
		}
	}
	return out, nil
}

// IsNil reports whether the property is present and xsi:nil.
func (in *Instance) IsNil(name string) bool {
	p, ok := in.Property(name)
	return ok && len(p.Values) == 1 && p.Values[0].Kind == KindNil
}

// Set replaces the property's values with one text value, appending the
// property if absent.
func (in *Instance) Set(name, text string) {
	in.SetValues(name, Value{Kind: KindText, Text: text})
}

// SetNil makes the property xsi:nil.
func (in *Instance) SetNil(name string) {
	in.SetValues(name, Value{Kind: KindNil})
}

// SetDatetime sets a cim:Datetime value in RFC 3339 form with microseconds,
// as WMI renders datetimes (its resolution is one microsecond).
func (in *Instance) SetDatetime(name string, t time.Time) {
	in.SetValues(name, Value{Kind: KindDatetime, Text: t.Format("2006-01-02T15:04:05.000000Z07:00")})
}

// SetInterval sets a cim:Interval value in xs:duration form.
func (in *Instance) SetInterval(name string, d time.Duration) {
	in.SetValues(name, Value{Kind: KindInterval, Text: FormatDuration(d)})
}

// SetValues replaces the property's values.
func (in *Instance) SetValues(name string, values ...Value) {
	if p, ok := in.Property(name); ok {
		p.Values = values
		return
	}
	in.Props = append(in.Props, Property{Name: name, Values: values})
}

// String names the kind ("text", "nil", …) for error messages.
func (k ValueKind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindNil:
		return "nil"
	case KindDatetime:
		return "datetime"
	case KindInterval:
		return "interval"
	case KindObject:
		return "object"
	case KindReference:
		return "reference"
	}
	return "ValueKind(" + strconv.Itoa(int(k)) + ")"
}

// Element renders the instance as XML in its own namespace with prefix p,
// declaring xsi and cim where used; values are escaped. It is the body of
// a Put, the _INPUT of an Invoke, or what a test server answers.
func (in *Instance) Element() *etree.Element {
	var el *etree.Element
	prefix := "p:"
	if in.Fragment {
		el = etree.NewElement("w:XmlFragment")
		el.CreateAttr("xmlns:w", NsWSMan)
		prefix = ""
	} else {
		el = etree.NewElement("p:" + in.ClassName)
		el.CreateAttr("xmlns:p", in.ResourceURI)
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
		el.CreateAttr("xmlns:xsi", NsXSI)
	}
	if needCIM && !in.Fragment {
		el.CreateAttr("xmlns:cim", NsCIM)
	}
	if in.TypeName != "" && !in.Fragment {
		el.CreateAttr("xsi:type", "p:"+in.TypeName)
	}
	for _, p := range in.Props {
		for _, v := range p.Values {
			c := el.CreateElement(prefix + p.Name)
			writeValue(c, v, in.Fragment)
		}
	}
	return el
}

func writeValue(c *etree.Element, v Value, fragment bool) {
	cimPrefix := "cim:"
	if fragment {
		cimPrefix = ""
	}
	switch v.Kind {
	case KindText:
		c.SetText(xmlSafe(v.Text))
	case KindNil:
		c.CreateAttr("xsi:nil", "true")
	case KindDatetime:
		c.CreateElement(cimPrefix + "Datetime").SetText(xmlSafe(v.Text))
	case KindInterval:
		c.CreateElement(cimPrefix + "Interval").SetText(xmlSafe(v.Text))
	case KindObject:
		if v.Object != nil {
			c.AddChild(v.Object.Element())
		}
	case KindReference:
		if v.Ref != nil {
			c.CreateAttr("xmlns:a", NsAddressing)
			c.CreateAttr("xmlns:w", NsWSMan)
			writeEPR(c, v.Ref)
		}
	}
}

// writeEPR appends a:Address and a:ReferenceParameters to el; the a and w
// prefixes must be in scope.
func writeEPR(el *etree.Element, epr *EndpointReference) {
	addr := epr.Address
	if addr == "" {
		addr = AddressAnonymous
	}
	el.CreateElement("a:Address").SetText(addr)
	rp := el.CreateElement("a:ReferenceParameters")
	rp.CreateElement("w:ResourceURI").SetText(epr.ResourceURI)
	if len(epr.Selectors) > 0 {
		writeSelectorSet(rp, epr.Selectors)
	}
}

// writeSelectorSet appends a w:SelectorSet to el.
func writeSelectorSet(el *etree.Element, sels []Selector) {
	ss := el.CreateElement("w:SelectorSet")
	for _, s := range sels {
		se := ss.CreateElement("w:Selector")
		se.CreateAttr("Name", s.Name)
		if s.EPR != nil {
			writeEPR(se.CreateElement("a:EndpointReference"), s.EPR)
		} else {
			se.SetText(xmlSafe(s.Value))
		}
	}
}

// xmlSafe replaces what XML 1.0 cannot carry (control characters other
// than tab, newline and carriage return; invalid UTF-8; U+FFFE/U+FFFF) with
// '?', as Windows itself does (MS-WSMV 3.1.4.1.25), so that a value never
// makes the whole envelope unparsable.
func xmlSafe(s string) string {
	ok := true
	for _, r := range s {
		if !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if xmlChar(r) {
			return r
		}
		return '?'
	}, s)
}

func xmlChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20:
		return false
	case r == utf8.RuneError, r == 0xFFFE, r == 0xFFFF:
		return false
	case r >= 0xD800 && r <= 0xDFFF:
		return false
	}
	return r <= 0x10FFFF
}

// unqualifiedAttr returns the value of el's attribute key that has no
// prefix, or "". etree's SelectAttrValue(key, "") would also match q:key,
// an attribute of another namespace.
func unqualifiedAttr(el *etree.Element, key string) string {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value
		}
	}
	return ""
}
