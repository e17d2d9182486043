package wsman

import (
	"encoding/xml"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// validName reports whether s can be written as an XML element name (after
// a prefix) or as a WMI key, option or property name: a letter or '_',
// then letters, digits, '_', '.' or '-'. WMI identifiers are narrower
// still ([A-Za-z_][A-Za-z0-9_]*), so nothing Windows accepts is refused.
// A name with non-ASCII letters must also be one encoding/xml reads back
// (it follows XML 1.0's older, narrower name tables).
func validName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	ascii := true
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (unicode.IsDigit(r) || r == '.' || r == '-'):
		default:
			return false
		}
		ascii = ascii && r < utf8.RuneSelf
	}
	if ascii {
		return true
	}
	tok, err := xml.NewDecoder(strings.NewReader("<" + s + "/>")).Token()
	se, ok := tok.(xml.StartElement)
	return err == nil && ok && se.Name.Space == "" && se.Name.Local == s
}

// checkNames refuses, before anything is sent, a selector, option, class
// or property name that would not survive as XML: a name is written
// unescaped as an element name, and a stray character there would change
// the envelope's structure or make it unparsable.
func checkNames(opts *Options, in *Instance) error {
	if opts != nil {
		if err := checkSelectorNames("selector", opts.Selectors); err != nil {
			return err
		}
		for _, o := range opts.OptionSet {
			if !validName(o.Name) {
				return fmt.Errorf("invalid option name %q: want a letter or '_', then letters, digits, '_', '.' or '-'", o.Name)
			}
		}
	}
	return checkInstanceNames(in, 0)
}

func checkSelectorNames(what string, sels []Selector) error {
	for _, s := range sels {
		if !validName(s.Name) {
			return fmt.Errorf("invalid %s name %q: want a letter or '_', then letters, digits, '_', '.' or '-'", what, s.Name)
		}
		if s.EPR != nil {
			if err := checkSelectorNames(what, s.EPR.Selectors); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxNesting bounds embedded objects in a request, as maxDepth bounds
// replies.
const maxNesting = 64

func checkInstanceNames(in *Instance, depth int) error {
	if in == nil {
		return nil
	}
	if depth > maxNesting {
		return fmt.Errorf("embedded objects nest deeper than %d", maxNesting)
	}
	if !in.Fragment && !validName(in.ClassName) {
		return fmt.Errorf("invalid class name %q: want a letter or '_', then letters, digits, '_', '.' or '-'", in.ClassName)
	}
	for _, p := range in.Props {
		if !validName(p.Name) {
			return fmt.Errorf("invalid property name %q: want a letter or '_', then letters, digits, '_', '.' or '-'", p.Name)
		}
		for _, v := range p.Values {
			switch {
			case v.Kind == KindObject:
				if err := checkInstanceNames(v.Object, depth+1); err != nil {
					return err
				}
			case v.Kind == KindReference && v.Ref != nil:
				if err := checkSelectorNames("selector", v.Ref.Selectors); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
