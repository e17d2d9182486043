package wsman

import (
	"errors"
	"time"

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
func ParseInstance(el *etree.Element) (*Instance, error) { panic("wsman: ParseInstance not implemented yet") }

// NewInstance returns an empty instance of the class at resourceURI; the
// class name is the last path segment of the URI.
func NewInstance(resourceURI string) *Instance { panic("wsman: NewInstance not implemented yet") }

// Property returns the named property; names match case-insensitively, as WMI does.
func (in *Instance) Property(name string) (*Property, bool) {
	panic("wsman: not implemented yet")
}

// String returns the text of a scalar property.
func (in *Instance) String(name string) (string, error) { panic("wsman: not implemented yet") }

// Uint64 parses a scalar unsigned property exactly (no float rounding).
func (in *Instance) Uint64(name string) (uint64, error) { panic("wsman: not implemented yet") }

// Int64 parses a scalar signed property exactly.
func (in *Instance) Int64(name string) (int64, error) { panic("wsman: not implemented yet") }

// Bool parses a scalar boolean property ("true"/"false", also "1"/"0").
func (in *Instance) Bool(name string) (bool, error) { panic("wsman: not implemented yet") }

// Datetime parses a cim:Datetime property (RFC 3339 with any fraction or offset).
func (in *Instance) Datetime(name string) (time.Time, error) { panic("wsman: not implemented yet") }

// Interval parses a cim:Interval (xs:duration) property.
func (in *Instance) Interval(name string) (time.Duration, error) { panic("wsman: not implemented yet") }

// Strings returns every value of an array property (a scalar is a one-item
// array; a nil array is empty).
func (in *Instance) Strings(name string) ([]string, error) { panic("wsman: not implemented yet") }

// Objects returns the embedded objects of a property.
func (in *Instance) Objects(name string) ([]*Instance, error) { panic("wsman: not implemented yet") }

// IsNil reports whether the property is present and xsi:nil.
func (in *Instance) IsNil(name string) bool { panic("wsman: not implemented yet") }

// Set replaces the property's values with one text value, appending the
// property if absent.
func (in *Instance) Set(name, text string) { panic("wsman: not implemented yet") }

// SetNil makes the property xsi:nil.
func (in *Instance) SetNil(name string) { panic("wsman: not implemented yet") }

// SetValues replaces the property's values.
func (in *Instance) SetValues(name string, values ...Value) { panic("wsman: not implemented yet") }

// Element renders the instance as XML in its own namespace with prefix p,
// declaring xsi and cim where used; values are escaped. It is the body of
// a Put, the _INPUT of an Invoke, or what a test server answers.
func (in *Instance) Element() *etree.Element { panic("wsman: not implemented yet") }
