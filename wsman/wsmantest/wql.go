package wsmantest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
)

// Schema is an optional Provider interface that declares the properties
// of its class, as the class definition does for WMI. With it the server
// checks a WQL query against the class before asking the provider, as
// WMI does: a name the class lacks, in the property list or anywhere in
// WHERE, is n:CannotProcessFilter with WBEM_E_INVALID_QUERY and no
// enumeration starts. It also compares values by the declared types
// (State = '4' is a number comparison, as WMI converts the constant to
// the property's type) and renders a property list in the declared
// order. Without a Schema the server checks only the syntax, and a name
// the instances lack is NULL.
type Schema interface {
	// Properties returns the class's properties in the order WinRM
	// renders them (the order of the class's instances).
	Properties() []PropertyDecl
}

// PropertyDecl declares one property of a class.
type PropertyDecl struct {
	// Name is the property's name as the class spells it.
	Name string
	// Type is the CIM type as MOF spells it: "string", "char16",
	// "boolean", "uint8" … "uint64", "sint8" … "sint64", "real32",
	// "real64", "datetime", "object" (an embedded object) or "ref".
	Type string
	// Array marks an array property.
	Array bool
}

// wqlQuery is the WQL the server evaluates (MicrosoftDocs win32
// WmiSdk where-clause.md, wql-operators.md, like-operator.md):
//
//	SELECT * | prop[, prop…] FROM Class [WHERE expr]
//	expr: expr OR expr | expr AND expr | NOT expr | ( expr ) | cond
//	cond: prop op literal | literal op prop | prop IS [NOT] NULL
//	      | prop LIKE 'pattern'
//	op:   = != <> < > <= >=
//	literal: 'text' | "text" | number | TRUE | FALSE | NULL
//
// AND binds tighter than OR. Not evaluated, so refused as invalid:
// ISA, dot notation into embedded objects, ASSOCIATORS OF and
// REFERENCES OF.
type wqlQuery struct {
	props []string // nil for *
	class string
	where *wqlExpr // nil without WHERE
}

// wqlExpr is a node of a WHERE clause.
type wqlExpr struct {
	op   byte // '|' OR, '&' AND, '!' NOT, 'c' a comparison
	kids []*wqlExpr
	cond wqlCond
}

// wqlCond is one comparison, the property on the left: "4 < State" is
// held as "State > 4".
type wqlCond struct {
	prop, op string // op: = != < > <= >= like
	lit      wqlLit
}

type wqlLit struct {
	kind byte // 's' string, 'n' number, 'b' bool, '0' null
	text string
}

type wqlToken struct {
	kind byte // 'i' identifier/keyword, 's' string, 'n' number, 'o' operator, ',' '*' '(' ')'
	text string
}

// wqlMaxDepth bounds the nesting of NOT and parentheses, so that a
// hostile query cannot exhaust the stack. WMI itself refuses overly
// complex queries (WBEM_E_QUOTA_VIOLATION, "Querying with WQL").
const wqlMaxDepth = 64

// wqlReserved are the words that cannot name a property (WQL keywords;
// "Querying with WQL" names NULL, TRUE and FALSE as restricted).
var wqlReserved = []string{"select", "from", "where", "and", "or", "not", "is", "isa", "like", "null", "true", "false"}

func lexWQL(q string) ([]wqlToken, error) {
	var out []wqlToken
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == ',' || c == '*' || c == '(' || c == ')':
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
			// The operators are = != <> < > <= >= (wql-operators.md):
			// "==" is two tokens, so a query using it is refused rather
			// than parsed into a comparison nothing can match.
			j := i + 1
			if j < len(q) && (q[j] == '=' && c != '=' || c == '<' && q[j] == '>') {
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
			if _, err := strconv.ParseFloat(q[i:j], 64); err != nil {
				return nil, fmt.Errorf("bad number %q", q[i:j])
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

type wqlParser struct {
	toks  []wqlToken
	pos   int
	depth int
}

func (p *wqlParser) peek() wqlToken {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return wqlToken{}
}

func (p *wqlParser) next() wqlToken { t := p.peek(); p.pos++; return t }

func (p *wqlParser) kw(word string) bool {
	if t := p.peek(); t.kind == 'i' && strings.EqualFold(t.text, word) {
		p.pos++
		return true
	}
	return false
}

// name reads a property or class name: an identifier that is no keyword.
func (p *wqlParser) name(what string) (string, error) {
	t := p.next()
	if t.kind != 'i' || slices.ContainsFunc(wqlReserved, func(w string) bool { return strings.EqualFold(w, t.text) }) {
		return "", fmt.Errorf("expected %s, got %q", what, t.text)
	}
	return t.text, nil
}

func parseWQL(q string) (*wqlQuery, error) {
	toks, err := lexWQL(q)
	if err != nil {
		return nil, err
	}
	p := &wqlParser{toks: toks}
	if !p.kw("select") {
		return nil, errors.New("expected SELECT")
	}
	out := &wqlQuery{}
	if p.peek().kind == '*' {
		p.pos++
	} else {
		for {
			n, err := p.name("a property name")
			if err != nil {
				return nil, err
			}
			out.props = append(out.props, n)
			if p.peek().kind != ',' {
				break
			}
			p.pos++
		}
	}
	if !p.kw("from") {
		return nil, errors.New("expected FROM")
	}
	if out.class, err = p.name("a class name"); err != nil {
		return nil, err
	}
	if p.pos == len(p.toks) {
		return out, nil
	}
	if !p.kw("where") {
		return nil, fmt.Errorf("unexpected %q", p.peek().text)
	}
	if out.where, err = p.or(); err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.peek().text)
	}
	return out, nil
}

func (p *wqlParser) or() (*wqlExpr, error) { return p.list('|', "or", p.and) }

func (p *wqlParser) and() (*wqlExpr, error) { return p.list('&', "and", p.unary) }

// list parses operands joined by the keyword word into one op node.
func (p *wqlParser) list(op byte, word string, operand func() (*wqlExpr, error)) (*wqlExpr, error) {
	x, err := operand()
	if err != nil {
		return nil, err
	}
	kids := []*wqlExpr{x}
	for p.kw(word) {
		if x, err = operand(); err != nil {
			return nil, err
		}
		kids = append(kids, x)
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return &wqlExpr{op: op, kids: kids}, nil
}

func (p *wqlParser) unary() (*wqlExpr, error) {
	if p.depth++; p.depth > wqlMaxDepth {
		return nil, errors.New("query nested too deeply")
	}
	defer func() { p.depth-- }()
	switch {
	case p.kw("not"):
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &wqlExpr{op: '!', kids: []*wqlExpr{x}}, nil
	case p.peek().kind == '(':
		p.pos++
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != ')' {
			return nil, errors.New("expected )")
		}
		return x, nil
	}
	c, err := p.cond()
	if err != nil {
		return nil, err
	}
	return &wqlExpr{op: 'c', cond: c}, nil
}

// literal reads a constant, or reports that the next token is none.
func (p *wqlParser) literal() (wqlLit, bool) {
	t := p.peek()
	var l wqlLit
	switch {
	case t.kind == 's':
		l = wqlLit{kind: 's', text: t.text}
	case t.kind == 'n':
		l = wqlLit{kind: 'n', text: t.text}
	case t.kind == 'i' && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")):
		l = wqlLit{kind: 'b', text: strings.ToLower(t.text)}
	case t.kind == 'i' && strings.EqualFold(t.text, "null"):
		l = wqlLit{kind: '0'}
	default:
		return wqlLit{}, false
	}
	p.pos++
	return l, true
}

// flipped is the operator with its operands swapped.
var flipped = map[string]string{"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

// cond reads one comparison. WMI wants a property on one side and a
// constant on the other (where-clause.md: "Property names cannot appear
// on both sides of the operator"); IS takes only NULL (wql-operators.md).
func (p *wqlParser) cond() (wqlCond, error) {
	if lit, ok := p.literal(); ok {
		op := p.next()
		if op.kind != 'o' {
			return wqlCond{}, errors.New("expected a comparison operator")
		}
		prop, err := p.name("a property name")
		if err != nil {
			return wqlCond{}, err
		}
		return wqlCond{prop: prop, op: flipped[normOp(op.text)], lit: lit}, nil
	}
	prop, err := p.name("a property name")
	if err != nil {
		return wqlCond{}, err
	}
	switch {
	case p.kw("is"):
		op := "="
		if p.kw("not") {
			op = "!="
		}
		if !p.kw("null") {
			return wqlCond{}, errors.New("expected NULL after IS")
		}
		return wqlCond{prop: prop, op: op, lit: wqlLit{kind: '0'}}, nil
	case p.kw("like"):
		t := p.next()
		if t.kind != 's' {
			return wqlCond{}, errors.New("expected a string after LIKE")
		}
		return wqlCond{prop: prop, op: "like", lit: wqlLit{kind: 's', text: t.text}}, nil
	}
	op := p.next()
	if op.kind != 'o' {
		return wqlCond{}, errors.New("expected a comparison operator")
	}
	lit, ok := p.literal()
	if !ok {
		return wqlCond{}, errors.New("expected a constant")
	}
	return wqlCond{prop: prop, op: normOp(op.text), lit: lit}, nil
}

func normOp(op string) string {
	if op == "<>" {
		return "!="
	}
	return op
}

// wqlSystemProperties are the system properties every WMI instance has
// (WmiSdk wmi-system-properties.md). A WHERE clause may test them
// (select-statement-for-data-queries.md filters on __CLASS).
var wqlSystemProperties = []string{
	"__CLASS", "__DERIVATION", "__DYNASTY", "__GENUS", "__NAMESPACE",
	"__PATH", "__PROPERTY_COUNT", "__RELPATH", "__SERVER", "__SUPERCLASS",
}

func isSystemProperty(name string) bool {
	return slices.ContainsFunc(wqlSystemProperties, func(s string) bool { return strings.EqualFold(s, name) })
}

// wqlEnv is what evaluating a query needs besides the instance.
type wqlEnv struct {
	decls     []PropertyDecl // the class's, from its Schema; nil without one
	machine   string         // __SERVER
	namespace string         // __NAMESPACE, e.g. root\microsoft\bits; "" if unknown
	keys      []string       // key properties, for __RELPATH; nil if unknown
}

func (e *wqlEnv) decl(name string) (PropertyDecl, bool) {
	for _, d := range e.decls {
		if strings.EqualFold(d.Name, name) {
			return d, true
		}
	}
	return PropertyDecl{}, false
}

// check validates q against the class's declared properties, as WMI does
// before it runs a query: every name the query uses must be one of them,
// or a system property in WHERE. The error only explains the refusal;
// WinRM reports every one the same way (faultInvalidQuery).
func (q *wqlQuery) check(env *wqlEnv) error {
	if env.decls == nil {
		return nil // no Schema: nothing to check against
	}
	for _, name := range q.props {
		// System properties (__PATH, __RELPATH, …) are valid in a WMI
		// property list, but no capture or documentation shows how WinRM
		// renders them in a w:XmlFragment, so the server refuses them
		// like an unknown name rather than invent a rendering.
		if _, ok := env.decl(name); !ok {
			return fmt.Errorf("class %s has no property %q", q.class, name)
		}
	}
	return q.where.check(q.class, env)
}

func (x *wqlExpr) check(class string, env *wqlEnv) error {
	if x == nil {
		return nil
	}
	for _, k := range x.kids {
		if err := k.check(class, env); err != nil {
			return err
		}
	}
	if x.op != 'c' || isSystemProperty(x.cond.prop) {
		return nil
	}
	d, ok := env.decl(x.cond.prop)
	if !ok {
		return fmt.Errorf("class %s has no property %q", class, x.cond.prop)
	}
	// where-clause.md: "the only valid Boolean operand types are the =,
	// != and <> types"; BoolProp <= TRUE and the like are invalid queries.
	if d.Type == "boolean" && x.cond.op != "=" && x.cond.op != "!=" && x.cond.op != "like" {
		return fmt.Errorf("operator %s on boolean property %q", x.cond.op, d.Name)
	}
	return nil
}

// match reports whether in satisfies the WHERE clause.
func (q *wqlQuery) match(in *wsman.Instance, env *wqlEnv) bool {
	return q.where == nil || q.where.eval(in, env)
}

func (x *wqlExpr) eval(in *wsman.Instance, env *wqlEnv) bool {
	switch x.op {
	case '|':
		return slices.ContainsFunc(x.kids, func(k *wqlExpr) bool { return k.eval(in, env) })
	case '&':
		return !slices.ContainsFunc(x.kids, func(k *wqlExpr) bool { return !k.eval(in, env) })
	case '!':
		return !x.kids[0].eval(in, env)
	}
	return x.cond.match(in, env)
}

func (c *wqlCond) match(in *wsman.Instance, env *wqlEnv) bool {
	v, typ, ok := env.value(in, c.prop)
	if c.lit.kind == '0' {
		switch c.op {
		case "=":
			return !ok
		case "!=":
			return ok
		}
		return false
	}
	if !ok {
		return false // comparisons with NULL are false in WQL
	}
	if c.op == "like" {
		return wqlLike(v, c.lit.text)
	}
	cmp, ok := compareWQL(typ, v, c.lit)
	if !ok {
		return false
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

// value returns the text and CIM type ("" if undeclared) of a property
// of in, or ok false for NULL. An array or an embedded object is NULL:
// WQL compares neither ("Querying with WQL": no queries of array types).
func (e *wqlEnv) value(in *wsman.Instance, name string) (text, typ string, ok bool) {
	if isSystemProperty(name) {
		return e.system(in, name)
	}
	d, declared := e.decl(name)
	if declared && (d.Array || d.Type == "object") {
		return "", d.Type, false
	}
	p, found := in.Property(name)
	if !found || len(p.Values) == 0 {
		return "", d.Type, false
	}
	switch p.Values[0].Kind {
	case wsman.KindNil, wsman.KindObject, wsman.KindReference:
		return "", d.Type, false
	}
	return p.Values[0].Text, d.Type, true
}

// system returns a system property of in, derived as WMI fills them
// (the values Get-WmiObject shows, e.g. in dsccommunity/SqlServerDsc#819:
// __RELPATH Class.Key="value", __PATH \\SERVER\namespace:relpath). The
// server knows no class hierarchy, so every class is taken as a root
// class: no __SUPERCLASS, __DYNASTY the class itself, empty __DERIVATION.
func (e *wqlEnv) system(in *wsman.Instance, name string) (text, typ string, ok bool) {
	switch strings.ToUpper(name) {
	case "__CLASS", "__DYNASTY":
		return in.ClassName, "string", in.ClassName != ""
	case "__GENUS":
		return "2", "sint32", true // an instance, not a class
	case "__PROPERTY_COUNT":
		n := len(in.Props)
		if e.decls != nil {
			n = len(e.decls)
		}
		return strconv.Itoa(n), "sint32", true
	case "__SERVER":
		return e.machine, "string", e.machine != ""
	case "__NAMESPACE":
		return e.namespace, "string", e.namespace != ""
	case "__RELPATH":
		rel, ok := e.relPath(in)
		return rel, "string", ok
	case "__PATH":
		rel, ok := e.relPath(in)
		if !ok || e.machine == "" || e.namespace == "" {
			return "", "string", false
		}
		return `\\` + e.machine + `\` + e.namespace + ":" + rel, "string", true
	}
	return "", "", false // __SUPERCLASS, __DERIVATION
}

// relPath is the instance's WMI relative path: Class.Key="value",…, or
// Class=@ for a singleton; ok is false when the keys are unknown.
func (e *wqlEnv) relPath(in *wsman.Instance) (string, bool) {
	if e.keys == nil || in.ClassName == "" {
		return "", false
	}
	if len(e.keys) == 0 {
		return in.ClassName + "=@", true
	}
	var b strings.Builder
	b.WriteString(in.ClassName)
	for i, k := range e.keys {
		v, typ, ok := e.value(in, k)
		if !ok {
			return "", false
		}
		if i == 0 {
			b.WriteByte('.')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		if isNumericType(typ) || typ == "boolean" {
			b.WriteString(v)
		} else {
			b.WriteByte('"')
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
			b.WriteByte('"')
		}
	}
	return b.String(), true
}

func isNumericType(typ string) bool {
	switch typ {
	case "uint8", "uint16", "uint32", "uint64", "sint8", "sint16", "sint32", "sint64", "real32", "real64":
		return true
	}
	return false
}

// compareWQL compares a property's text with a constant as WMI does: in
// the property's type when it is declared (the constant converted to
// it: ParentProcessId='1234' is a number comparison, common in scripts),
// else in the constant's type; strings without regard to case
// (where-clause.md). ok is false when the two cannot be compared.
func compareWQL(typ, v string, lit wqlLit) (cmp int, ok bool) {
	switch {
	case isNumericType(typ) || typ == "" && lit.kind == 'n':
		c := lit.text
		if lit.kind == 'b' {
			c = map[string]string{"true": "1", "false": "0"}[lit.text]
		}
		return compareNumbers(v, strings.TrimSpace(c))
	case typ == "boolean" || typ == "" && lit.kind == 'b':
		a, okA := wqlBool(v)
		b, okB := wqlBool(lit.text)
		if !okA || !okB {
			return 0, false
		}
		return a - b, true
	}
	return strings.Compare(strings.ToLower(v), strings.ToLower(lit.text)), true
}

// wqlBool reads a boolean as WQL takes it: TRUE or FALSE in any case, or
// a number (TRUE is 1, FALSE 0; where-clause.md).
func wqlBool(s string) (int, bool) {
	s = strings.TrimSpace(s)
	switch {
	case strings.EqualFold(s, "true"):
		return 1, true
	case strings.EqualFold(s, "false"):
		return 0, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	if f != 0 {
		return 1, true
	}
	return 0, true
}

// compareNumbers compares two decimal numbers exactly when both are
// integers (a uint64 such as BytesTotal's 18446744073709551615 does not
// survive float64), else as floats.
func compareNumbers(a, b string) (int, bool) {
	an, aMag, aInt := parseInteger(a)
	bn, bMag, bInt := parseInteger(b)
	if aInt && bInt {
		an, bn = an && aMag != 0, bn && bMag != 0 // -0 is 0
		switch {
		case an != bn:
			if an {
				return -1, true
			}
			return 1, true
		case aMag == bMag:
			return 0, true
		case (aMag < bMag) != an: // a larger magnitude is smaller below zero
			return -1, true
		}
		return 1, true
	}
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA != nil || errB != nil {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

// parseInteger splits a decimal integer into its sign and magnitude.
func parseInteger(s string) (neg bool, mag uint64, ok bool) {
	if neg = strings.HasPrefix(s, "-"); neg {
		s = s[1:]
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	mag, err := strconv.ParseUint(s, 10, 64)
	return neg, mag, err == nil
}

// wqlLike matches s against a LIKE pattern without regard to case
// (like-operator.md): % any run of characters, _ any one, [abc] or [a-f]
// one of a set, [^abc] one outside it. A [ without its ] stands for
// itself.
func wqlLike(s, pattern string) bool {
	type item struct {
		kind   byte // '%', '_', '[' set, 'c' character
		c      rune
		negate bool
		set    []rune // pairs of range bounds
	}
	var pat []item
	pr := []rune(strings.ToLower(pattern))
	for i := 0; i < len(pr); i++ {
		switch r := pr[i]; r {
		case '%', '_':
			pat = append(pat, item{kind: byte(r)})
		case '[':
			end := slices.Index(pr[i+1:], ']')
			if end < 0 {
				pat = append(pat, item{kind: 'c', c: r})
				continue
			}
			body := pr[i+1 : i+1+end]
			it := item{kind: '['}
			if len(body) > 0 && body[0] == '^' {
				it.negate, body = true, body[1:]
			}
			for j := 0; j < len(body); j++ {
				lo, hi := body[j], body[j]
				if j+2 < len(body) && body[j+1] == '-' {
					hi = body[j+2]
					j += 2
				}
				it.set = append(it.set, lo, hi)
			}
			pat = append(pat, it)
			i += end + 1
		default:
			pat = append(pat, item{kind: 'c', c: r})
		}
	}
	one := func(it item, r rune) bool {
		switch it.kind {
		case '_':
			return true
		case 'c':
			return it.c == r
		}
		in := false
		for j := 0; j+1 < len(it.set); j += 2 {
			if it.set[j] <= r && r <= it.set[j+1] {
				in = true
			}
		}
		return in != it.negate
	}
	str := []rune(strings.ToLower(s))
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pat) && pat[pi].kind == '%':
			star, mark = pi, si
			pi++
		case pi < len(pat) && one(pat[pi], str[si]):
			si++
			pi++
		case star >= 0:
			mark++
			si, pi = mark, star+1
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi].kind == '%' {
		pi++
	}
	return pi == len(pat)
}

// project turns an instance into the w:XmlFragment WinRM returns for a
// property list: the named properties in the class's order, whatever
// the query's order. Evidence: txwinrm's test/fetch.py asked Server 2012
// for Win32_OperatingSystem with its properties in Python set order
// (server_2012/Win32_OperatingSystem.properties), and the capture
// (wmi-enum-xmlfragment-response_Win32_OperatingSystem_2012.xml) lists
// them in the order of SELECT *. Without a Schema the instance's order
// stands for the class's; names it lacks follow, as NULL.
func (q *wqlQuery) project(in *wsman.Instance, env *wqlEnv) *wsman.Instance {
	out := &wsman.Instance{ClassName: in.ClassName, ResourceURI: in.ResourceURI, Fragment: true}
	selected := func(name string) bool {
		return slices.ContainsFunc(q.props, func(s string) bool { return strings.EqualFold(s, name) })
	}
	null := []wsman.Value{{Kind: wsman.KindNil}}
	if env.decls != nil {
		for _, d := range env.decls {
			if !selected(d.Name) {
				continue
			}
			if p, ok := in.Property(d.Name); ok {
				out.Props = append(out.Props, wsman.Property{Name: d.Name, Values: p.Values})
			} else {
				out.Props = append(out.Props, wsman.Property{Name: d.Name, Values: null})
			}
		}
		return out
	}
	has := func(name string) bool {
		return slices.ContainsFunc(out.Props, func(p wsman.Property) bool { return strings.EqualFold(p.Name, name) })
	}
	for _, p := range in.Props {
		if selected(p.Name) && !has(p.Name) {
			out.Props = append(out.Props, p)
		}
	}
	for _, name := range q.props {
		if !has(name) {
			out.Props = append(out.Props, wsman.Property{Name: name, Values: null})
		}
	}
	return out
}
