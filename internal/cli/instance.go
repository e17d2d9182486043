package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
)

// instanceJSON renders an instance as an object of its properties in wire
// order: text as strings, xsi:nil as null, several values as a list,
// embedded objects as objects and references as {address, resourceUri,
// selectors}. host, when not empty, is put first as "host".
func instanceJSON(host string, in *wsman.Instance) json.RawMessage {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	key := func(k string) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeJSONString(&buf, k)
		buf.WriteByte(':')
	}
	if host != "" {
		key("host")
		writeJSONString(&buf, host)
	}
	for _, p := range in.Props {
		key(p.Name)
		switch len(p.Values) {
		case 0:
			buf.WriteString("null")
		case 1:
			writeValueJSON(&buf, p.Values[0])
		default:
			buf.WriteByte('[')
			for i, v := range p.Values {
				if i > 0 {
					buf.WriteByte(',')
				}
				writeValueJSON(&buf, v)
			}
			buf.WriteByte(']')
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func writeValueJSON(buf *bytes.Buffer, v wsman.Value) {
	switch v.Kind {
	case wsman.KindNil:
		buf.WriteString("null")
	case wsman.KindObject:
		if v.Object == nil {
			buf.WriteString("null")
			return
		}
		buf.Write(instanceJSON("", v.Object))
	case wsman.KindReference:
		if v.Ref == nil {
			buf.WriteString("null")
			return
		}
		b, _ := json.Marshal(eprJSON(v.Ref))
		buf.Write(b)
	default:
		writeJSONString(buf, v.Text)
	}
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}

// eprRecord is an endpoint reference as JSON.
type eprRecord struct {
	Host        string `json:"host,omitempty"`
	Address     string `json:"address"`
	ResourceURI string `json:"resourceUri"`
	// Selectors maps each selector's name to its text or, for a selector
	// whose value is itself a reference (WS-Management allows one, for
	// associations), to that reference as an object of this shape.
	Selectors map[string]any `json:"selectors"`
	// epr is the reference as it came, for the text form: its selectors
	// in the host's order, which the map loses.
	epr *wsman.EndpointReference
}

func eprJSON(e *wsman.EndpointReference) eprRecord {
	r := eprRecord{Address: e.Address, ResourceURI: e.ResourceURI, Selectors: map[string]any{}, epr: e}
	for _, s := range e.Selectors {
		if s.EPR != nil {
			r.Selectors[s.Name] = eprJSON(s.EPR)
			continue
		}
		r.Selectors[s.Name] = s.Value
	}
	return r
}

// writeInstanceText prints an instance the way winrm.cmd does: the class
// name, then "Name = value" lines, embedded objects indented.
func writeInstanceText(w io.Writer, in *wsman.Instance, indent string) {
	name := in.ClassName
	if name == "" {
		name = "(instance)"
	}
	fmt.Fprintf(w, "%s%s\n", indent, name)
	ind := indent + "    "
	for _, p := range in.Props {
		var texts []string
		var objs []*wsman.Instance
		for _, v := range p.Values {
			switch v.Kind {
			case wsman.KindNil:
				texts = append(texts, "null")
			case wsman.KindObject:
				if v.Object != nil {
					objs = append(objs, v.Object)
				}
			case wsman.KindReference:
				if v.Ref != nil {
					texts = append(texts, eprText(v.Ref))
				}
			default:
				texts = append(texts, v.Text)
			}
		}
		if len(p.Values) == 0 {
			texts = append(texts, "null")
		}
		if len(objs) > 0 {
			fmt.Fprintf(w, "%s%s\n", ind, p.Name)
			for _, o := range objs {
				writeInstanceText(w, o, ind+"    ")
			}
			continue
		}
		fmt.Fprintf(w, "%s%s = %s\n", ind, p.Name, strings.Join(texts, ", "))
	}
}

func eprText(e *wsman.EndpointReference) string {
	var sel []string
	for _, s := range e.Selectors {
		if s.EPR != nil {
			// A reference as a selector's value, bracketed.
			sel = append(sel, s.Name+"=("+eprText(s.EPR)+")")
			continue
		}
		sel = append(sel, s.Name+"="+s.Value)
	}
	s := e.ResourceURI
	if len(sel) > 0 {
		s += "?" + strings.Join(sel, "+")
	}
	return s
}

// parsePairs parses repeated Name=Value flags (-s, -v). The name must not
// be empty; the value may be. flag names the flag in errors.
func parsePairs(flag string, pairs []string) ([][2]string, error) {
	var out [][2]string
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, usageErrorf("%s %q: want Name=Value", flag, p)
		}
		if strings.ContainsAny(name, " <>&\"'/") {
			return nil, usageErrorf("%s %q: %q is not a property or key name", flag, p, name)
		}
		out = append(out, [2]string{name, value})
	}
	return out, nil
}

// selectorsFrom turns -s pairs into selectors.
func selectorsFrom(pairs [][2]string) []wsman.Selector {
	var sel []wsman.Selector
	for _, p := range pairs {
		sel = append(sel, wsman.Selector{Name: p[0], Value: p[1]})
	}
	return sel
}

// applyValues sets -v pairs on in; a name given several times becomes an
// array in the order given.
func applyValues(in *wsman.Instance, pairs [][2]string) {
	var order []string
	vals := map[string][]wsman.Value{}
	for _, p := range pairs {
		if _, ok := vals[p[0]]; !ok {
			order = append(order, p[0])
		}
		vals[p[0]] = append(vals[p[0]], wsman.Value{Kind: wsman.KindText, Text: p[1]})
	}
	for _, n := range order {
		in.SetValues(n, vals[n]...)
	}
}
