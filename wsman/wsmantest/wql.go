package wsmantest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
)

// wqlQuery is the subset of WQL the server evaluates:
//
//	SELECT * | prop[, prop…] FROM Class
//	  [WHERE cond {AND|OR cond}]        (AND binds tighter; no parentheses)
//	cond: prop op literal | prop IS [NOT] NULL
//	op:   = != <> < > <= >=
//	literal: 'text' | "text" | number | TRUE | FALSE | NULL
type wqlQuery struct {
	props []string // nil for *
	class string
	where [][]wqlCond // OR of ANDs
}

type wqlCond struct {
	prop, op string
	lit      wqlLit
}

type wqlLit struct {
	kind byte // 's' string, 'n' number, 'b' bool, '0' null
	text string
}

type wqlToken struct {
	kind byte // 'i' identifier/keyword, 's' string, 'n' number, 'o' operator, ',' '*'
	text string
}

func lexWQL(q string) ([]wqlToken, error) {
	var out []wqlToken
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == ',' || c == '*':
			out = append(out, wqlToken{kind: c, text: string(c)})
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(q) && q[j] != c; j++ {
				if q[j] == '\\' && j+1 < len(q) {
					j++
				}
				b.WriteByte(q[j])
			}
			if j >= len(q) {
				return nil, errors.New("unterminated string")
			}
			out = append(out, wqlToken{kind: 's', text: b.String()})
			i = j + 1
		case c == '=' || c == '<' || c == '>' || c == '!':
			j := i + 1
			if j < len(q) && (q[j] == '=' || (c == '<' && q[j] == '>')) {
				j++
			}
			op := q[i:j]
			if op == "!" {
				return nil, errors.New("unexpected '!'")
			}
			out = append(out, wqlToken{kind: 'o', text: op})
			i = j
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(q) && (q[j] >= '0' && q[j] <= '9' || q[j] == '.') {
				j++
			}
			out = append(out, wqlToken{kind: 'n', text: q[i:j]})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(q) && (q[j] == '_' || q[j] >= 'a' && q[j] <= 'z' || q[j] >= 'A' && q[j] <= 'Z' || q[j] >= '0' && q[j] <= '9') {
				j++
			}
			out = append(out, wqlToken{kind: 'i', text: q[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return out, nil
}

func parseWQL(q string) (*wqlQuery, error) {
	toks, err := lexWQL(q)
	if err != nil {
		return nil, err
	}
	pos := 0
	peek := func() wqlToken {
		if pos < len(toks) {
			return toks[pos]
		}
		return wqlToken{}
	}
	next := func() wqlToken { t := peek(); pos++; return t }
	kw := func(word string) bool {
		if t := peek(); t.kind == 'i' && strings.EqualFold(t.text, word) {
			pos++
			return true
		}
		return false
	}
	if !kw("select") {
		return nil, errors.New("expected SELECT")
	}
	out := &wqlQuery{}
	if peek().kind == '*' {
		pos++
	} else {
		for {
			t := next()
			if t.kind != 'i' {
				return nil, errors.New("expected a property name")
			}
			out.props = append(out.props, t.text)
			if peek().kind != ',' {
				break
			}
			pos++
		}
	}
	if !kw("from") {
		return nil, errors.New("expected FROM")
	}
	t := next()
	if t.kind != 'i' {
		return nil, errors.New("expected a class name")
	}
	out.class = t.text
	if pos == len(toks) {
		return out, nil
	}
	if !kw("where") {
		return nil, fmt.Errorf("unexpected %q", peek().text)
	}
	group := []wqlCond{}
	for {
		p := next()
		if p.kind != 'i' {
			return nil, errors.New("expected a property name in WHERE")
		}
		var c wqlCond
		c.prop = p.text
		if kw("is") {
			c.op = "="
			if kw("not") {
				c.op = "!="
			}
			if !kw("null") {
				return nil, errors.New("expected NULL after IS")
			}
			c.lit = wqlLit{kind: '0'}
		} else {
			op := next()
			if op.kind != 'o' {
				return nil, errors.New("expected a comparison operator")
			}
			c.op = op.text
			if c.op == "<>" {
				c.op = "!="
			}
			v := next()
			switch {
			case v.kind == 's':
				c.lit = wqlLit{kind: 's', text: v.text}
			case v.kind == 'n':
				if _, err := strconv.ParseFloat(v.text, 64); err != nil {
					return nil, fmt.Errorf("bad number %q", v.text)
				}
				c.lit = wqlLit{kind: 'n', text: v.text}
			case v.kind == 'i' && (strings.EqualFold(v.text, "true") || strings.EqualFold(v.text, "false")):
				c.lit = wqlLit{kind: 'b', text: strings.ToLower(v.text)}
			case v.kind == 'i' && strings.EqualFold(v.text, "null"):
				c.lit = wqlLit{kind: '0'}
			default:
				return nil, errors.New("expected a literal")
			}
		}
		group = append(group, c)
		switch {
		case pos == len(toks):
			out.where = append(out.where, group)
			return out, nil
		case kw("and"):
		case kw("or"):
			out.where = append(out.where, group)
			group = []wqlCond{}
		default:
			return nil, fmt.Errorf("unexpected %q", peek().text)
		}
	}
}

func (q *wqlQuery) match(in *wsman.Instance) bool {
	if len(q.where) == 0 {
		return true
	}
	for _, group := range q.where {
		ok := true
		for _, c := range group {
			if !c.match(in) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (c wqlCond) match(in *wsman.Instance) bool {
	var v *wsman.Value
	if p, ok := in.Property(c.prop); ok && len(p.Values) > 0 && p.Values[0].Kind != wsman.KindNil {
		v = &p.Values[0]
	}
	if c.lit.kind == '0' {
		switch c.op {
		case "=":
			return v == nil
		case "!=":
			return v != nil
		}
		return false
	}
	if v == nil {
		return false // comparisons with NULL are false in WQL
	}
	var cmp int
	switch c.lit.kind {
	case 'n':
		a, err1 := strconv.ParseFloat(v.Text, 64)
		b, _ := strconv.ParseFloat(c.lit.text, 64)
		if err1 != nil {
			return false
		}
		switch {
		case a < b:
			cmp = -1
		case a > b:
			cmp = 1
		}
	case 'b':
		a := strings.ToLower(v.Text)
		if a == "1" {
			a = "true"
		} else if a == "0" {
			a = "false"
		}
		cmp = strings.Compare(a, c.lit.text)
	default:
		cmp = strings.Compare(strings.ToLower(v.Text), strings.ToLower(c.lit.text))
	}
	switch c.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case ">":
		return cmp > 0
	case "<=":
		return cmp <= 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// project turns an instance into the w:XmlFragment WinRM returns for a
// property list: the named properties, in the query's order.
func (q *wqlQuery) project(in *wsman.Instance) *wsman.Instance {
	out := &wsman.Instance{ClassName: in.ClassName, ResourceURI: in.ResourceURI, Fragment: true}
	for _, name := range q.props {
		if p, ok := in.Property(name); ok {
			out.Props = append(out.Props, *p)
		} else {
			out.Props = append(out.Props, wsman.Property{Name: name, Values: []wsman.Value{{Kind: wsman.KindNil}}})
		}
	}
	return out
}
