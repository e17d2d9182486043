package fleet

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Inventory is a parsed inventory: hosts in the order they first appear,
// groups with their children and variables. Plain hosts files, Ansible INI
// and Ansible YAML inventories all become one.
type Inventory struct {
	hosts  []*invHost
	byName map[string]*invHost
	groups map[string]*group
	// Warnings are things that were read but ignored, such as passwords
	// in host variables (never used: the password comes from the
	// environment, a file or a prompt).
	Warnings []string
}

type invHost struct {
	name   string
	vars   map[string]string
	direct []string // groups naming the host directly
}

type group struct {
	name     string
	hosts    []string
	children []string
	parents  []string
	vars     map[string]string
}

func newInventory() *Inventory {
	inv := &Inventory{byName: map[string]*invHost{}, groups: map[string]*group{}}
	inv.group("all")
	inv.group("ungrouped")
	return inv
}

func (inv *Inventory) group(name string) *group {
	g := inv.groups[name]
	if g == nil {
		g = &group{name: name, vars: map[string]string{}}
		inv.groups[name] = g
	}
	return g
}

// addHost puts a host into a group (creating both as needed) and merges
// its variables; a later definition of a variable wins, as in Ansible.
func (inv *Inventory) addHost(groupName, name string, vars map[string]string) {
	h := inv.byName[name]
	if h == nil {
		h = &invHost{name: name, vars: map[string]string{}}
		inv.byName[name] = h
		inv.hosts = append(inv.hosts, h)
	}
	for k, v := range vars {
		h.vars[k] = v
	}
	if groupName != "" && !slices.Contains(h.direct, groupName) {
		h.direct = append(h.direct, groupName)
		g := inv.group(groupName)
		g.hosts = append(g.hosts, name)
	}
}

func (inv *Inventory) addChild(parent, child string) {
	p, c := inv.group(parent), inv.group(child)
	if !slices.Contains(p.children, child) {
		p.children = append(p.children, child)
		c.parents = append(c.parents, parent)
	}
}

// ansibleSecretVars are never read: bitsremote takes passwords only from
// the environment, a file or a prompt, and never stores them.
var ansibleSecretVars = []string{"ansible_password", "ansible_winrm_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass"}

// LoadInventory reads an inventory file: YAML when the name ends in .yml,
// .yaml or .json or the content starts like YAML ("all:", "---"); else
// INI, of which a plain hosts file (one host[:port] or URL a line, #
// comments) is the simplest case.
func LoadInventory(name string) (*Inventory, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return ParseInventory(data, name)
}

// ParseInventory parses inventory bytes; name is used in errors and picks
// the format as LoadInventory describes.
func ParseInventory(data []byte, name string) (*Inventory, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yml", ".yaml", ".json":
		return ParseYAML(bytes.NewReader(data), name)
	}
	if looksYAML(data) {
		return ParseYAML(bytes.NewReader(data), name)
	}
	return ParseINI(bytes.NewReader(data), name)
}

var yamlStart = regexp.MustCompile(`^(---|[A-Za-z0-9_.-]+:\s*(#.*)?$|\{)`)

// looksYAML is true when the first meaningful line is a YAML document
// start, a flow mapping or a bare "group:" key; an INI host line never
// ends in a colon.
func looksYAML(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		return yamlStart.MatchString(l)
	}
	return false
}

var iniSection = regexp.MustCompile(`^\[([^\[\]:\s]+)(?::(vars|children))?\]$`)

// ParseINI reads an Ansible INI inventory: "[group]" sections of host
// lines ("name key=value ..."), "[group:vars]" of "key=value" lines and
// "[group:children]" of group names; host lines before any section are
// ungrouped. A host is "name", "name:port", a URL, or a range pattern
// such as "web[01:20].example.com". Lines starting with # or ; and text
// after an unquoted " #" are comments.
func ParseINI(r io.Reader, name string) (*Inventory, error) {
	inv := newInventory()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section, kind := "ungrouped", ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		where := func(err error) error { return fmt.Errorf("%s line %d: %w", name, n, err) }
		if line[0] == '[' && !looksLikeHostWithBracket(line) {
			m := iniSection.FindStringSubmatch(stripComment(line))
			if m == nil {
				return nil, where(fmt.Errorf("bad section header %q: want [group], [group:vars] or [group:children]", line))
			}
			section, kind = m[1], m[2]
			inv.group(section)
			continue
		}
		toks, err := splitINI(line)
		if err != nil {
			return nil, where(err)
		}
		if len(toks) == 0 {
			continue
		}
		switch kind {
		case "vars":
			k, v, ok := strings.Cut(strings.Join(toks, " "), "=")
			if !ok {
				return nil, where(fmt.Errorf("%q in [%s:vars]: want key=value", line, section))
			}
			inv.group(section).vars[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
		case "children":
			if len(toks) != 1 || strings.Contains(toks[0], "=") {
				return nil, where(fmt.Errorf("%q in [%s:children]: want one group name", line, section))
			}
			if toks[0] == section {
				return nil, where(fmt.Errorf("group %q cannot be its own child", section))
			}
			inv.addChild(section, toks[0])
		default:
			vars := map[string]string{}
			for _, t := range toks[1:] {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return nil, where(fmt.Errorf("host %s: %q is not key=value", toks[0], t))
				}
				vars[k] = unquote(v)
			}
			if err := inv.addPattern(section, toks[0], vars); err != nil {
				return nil, where(err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := inv.finish(name); err != nil {
		return nil, err
	}
	return inv, nil
}

// looksLikeHostWithBracket tells "[::1]:5985" (a host) from "[group]".
func looksLikeHostWithBracket(line string) bool {
	return strings.HasPrefix(line, "[") && strings.Contains(line, "]:") && !strings.HasSuffix(line, "]")
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// splitINI splits a host or vars line on blanks, keeping quoted values
// whole and stopping at an unquoted "#" that starts a word.
func splitINI(line string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			cur.WriteByte(c)
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
			cur.WriteByte(c)
			in = true
		case c == ' ' || c == '\t':
			if in {
				toks = append(toks, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			return toks, nil
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if in {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// addPattern adds the hosts a host token names, ranges expanded. A host
// is kept by name as written ("name", "name:port" or a URL), so that two
// ports of one address are two hosts, as in a plain hosts file.
func (inv *Inventory) addPattern(groupName, tok string, vars map[string]string) error {
	names, err := expandRange(tok)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := ParseHost(n); err != nil {
			return err
		}
		inv.addHost(groupName, n, vars)
	}
	return nil
}

var hostRange = regexp.MustCompile(`\[([0-9]+|[a-z]+):([0-9]+|[a-z]+)(?::([0-9]+))?\]`)

// maxRange bounds one pattern's expansion so a typo cannot eat memory.
const maxRange = 100000

// expandRange expands Ansible host ranges: "web[01:03]" → web01, web02,
// web03 (leading zeros keep the width), "db-[a:c]", and an optional
// step "[1:9:2]". Several ranges in one name multiply.
func expandRange(s string) ([]string, error) {
	loc := hostRange.FindStringSubmatchIndex(s)
	if loc == nil {
		return []string{s}, nil
	}
	lo, hi := s[loc[2]:loc[3]], s[loc[4]:loc[5]]
	step := 1
	if loc[6] >= 0 {
		step, _ = strconv.Atoi(s[loc[6]:loc[7]])
		if step < 1 {
			return nil, fmt.Errorf("host range %q: step must be at least 1", s[loc[0]:loc[1]])
		}
	}
	var items []string
	numeric := lo[0] >= '0' && lo[0] <= '9'
	if numeric != (hi[0] >= '0' && hi[0] <= '9') {
		return nil, fmt.Errorf("host range %q: mixes numbers and letters", s[loc[0]:loc[1]])
	}
	if numeric {
		a, _ := strconv.Atoi(lo)
		b, _ := strconv.Atoi(hi)
		if a > b || (b-a)/step >= maxRange {
			return nil, fmt.Errorf("host range %q: want start <= end and at most %d hosts", s[loc[0]:loc[1]], maxRange)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for i := a; i <= b; i += step {
			items = append(items, fmt.Sprintf("%0*d", width, i))
		}
	} else {
		if len(lo) != 1 || len(hi) != 1 || lo > hi {
			return nil, fmt.Errorf("host range %q: letter ranges are one letter each, start <= end", s[loc[0]:loc[1]])
		}
		for c := lo[0]; c <= hi[0]; c += byte(step) {
			items = append(items, string(c))
			if int(c)+step > 255 {
				break
			}
		}
	}
	prefix, rest := s[:loc[0]], s[loc[1]:]
	tails, err := expandRange(rest)
	if err != nil {
		return nil, err
	}
	if len(items)*len(tails) > maxRange {
		return nil, fmt.Errorf("host pattern %q expands to more than %d hosts", s, maxRange)
	}
	out := make([]string, 0, len(items)*len(tails))
	for _, it := range items {
		for _, t := range tails {
			out = append(out, prefix+it+t)
		}
	}
	return out, nil
}

// ParseYAML reads an Ansible YAML inventory:
//
//	all:
//	  vars: {ansible_user: admin}
//	  children:
//	    windows:
//	      hosts:
//	        win1: {ansible_host: 10.0.0.1}
//	        win[2:3]:
//
// Top-level keys are groups; each has optional hosts (a mapping of host
// pattern to variables), vars and children (a mapping of group names to
// the same structure).
func ParseYAML(r io.Reader, name string) (*Inventory, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty inventory", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	inv := newInventory()
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty inventory", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s line %d: the inventory must be a mapping of group names", name, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if err := inv.yamlGroup(name, "", root.Content[i], root.Content[i+1]); err != nil {
			return nil, err
		}
	}
	if err := inv.finish(name); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) yamlGroup(file, parent string, key, body *yaml.Node) error {
	gname := key.Value
	if gname == "" || strings.ContainsAny(gname, " \t:[]") {
		return fmt.Errorf("%s line %d: bad group name %q", file, key.Line, gname)
	}
	inv.group(gname)
	if parent != "" {
		if parent == gname {
			return fmt.Errorf("%s line %d: group %q cannot be its own child", file, key.Line, gname)
		}
		inv.addChild(parent, gname)
	}
	if body == nil || body.Tag == "!!null" {
		return nil
	}
	if body.Kind != yaml.MappingNode {
		return fmt.Errorf("%s line %d: group %q: want a mapping with hosts, vars or children", file, body.Line, gname)
	}
	for i := 0; i+1 < len(body.Content); i += 2 {
		k, v := body.Content[i], body.Content[i+1]
		empty := v.Tag == "!!null"
		switch k.Value {
		case "hosts":
			if empty {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("%s line %d: %s.hosts: want a mapping of host names", file, v.Line, gname)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				vars, err := yamlVars(file, hv)
				if err != nil {
					return err
				}
				if err := inv.addPattern(gname, hk.Value, vars); err != nil {
					return fmt.Errorf("%s line %d: %w", file, hk.Line, err)
				}
			}
		case "vars":
			vars, err := yamlVars(file, v)
			if err != nil {
				return err
			}
			for kk, vv := range vars {
				inv.group(gname).vars[kk] = vv
			}
		case "children":
			if empty {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("%s line %d: %s.children: want a mapping of group names", file, v.Line, gname)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				if err := inv.yamlGroup(file, gname, v.Content[j], v.Content[j+1]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%s line %d: group %q: unknown key %q (want hosts, vars or children)", file, k.Line, gname, k.Value)
		}
	}
	return nil
}

// yamlVars flattens a mapping of variables to strings; a list becomes a
// comma-separated string (ansible_winrm_transport: [ntlm, kerberos]).
func yamlVars(file string, n *yaml.Node) (map[string]string, error) {
	vars := map[string]string{}
	if n == nil || n.Tag == "!!null" {
		return vars, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s line %d: want a mapping of variables", file, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			vars[k.Value] = v.Value
		case yaml.SequenceNode:
			var parts []string
			for _, e := range v.Content {
				parts = append(parts, e.Value)
			}
			vars[k.Value] = strings.Join(parts, ",")
		default:
			// Nested structures are for other Ansible modules; none of
			// the connection variables we read is one.
			vars[k.Value] = ""
		}
	}
	return vars, nil
}

// finish checks the group graph for cycles and puts hosts without a group
// into "ungrouped", as Ansible does.
func (inv *Inventory) finish(name string) error {
	for _, g := range inv.groups {
		if g.name != "all" && len(g.parents) == 0 {
			g.parents = []string{"all"}
		}
	}
	state := map[string]int{}
	var visit func(g string, trail []string) error
	visit = func(g string, trail []string) error {
		switch state[g] {
		case 1:
			return fmt.Errorf("%s: groups form a cycle: %s", name, strings.Join(append(trail, g), " -> "))
		case 2:
			return nil
		}
		state[g] = 1
		for _, c := range inv.groups[g].children {
			if err := visit(c, append(trail, g)); err != nil {
				return err
			}
		}
		state[g] = 2
		return nil
	}
	names := make([]string, 0, len(inv.groups))
	for n := range inv.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return err
		}
	}
	for _, h := range inv.hosts {
		if len(h.direct) == 0 || (len(h.direct) == 1 && h.direct[0] == "all") {
			if !slices.Contains(h.direct, "ungrouped") {
				h.direct = append(h.direct, "ungrouped")
				g := inv.groups["ungrouped"]
				g.hosts = append(g.hosts, h.name)
			}
		}
		for _, k := range ansibleSecretVars {
			if _, ok := h.vars[k]; ok {
				inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: host %s: %s ignored (passwords come from BITSREMOTE_PASSWORD, --password-file or a prompt)", name, h.name, k))
			}
		}
	}
	for _, n := range names {
		for _, k := range ansibleSecretVars {
			if _, ok := inv.groups[n].vars[k]; ok {
				inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: group %s: %s ignored (passwords come from BITSREMOTE_PASSWORD, --password-file or a prompt)", name, n, k))
			}
		}
	}
	if len(inv.hosts) == 0 {
		return fmt.Errorf("%s: no hosts in the inventory", name)
	}
	return nil
}

// ancestors returns every group a host belongs to with its depth below
// "all" (the longest path), for variable precedence.
func (inv *Inventory) ancestors(h *invHost) map[string]int {
	depth := map[string]int{}
	var up func(g string, d int)
	up = func(g string, d int) {
		if old, ok := depth[g]; ok && old >= d {
			return
		}
		depth[g] = d
		for _, p := range inv.groups[g].parents {
			up(p, d-1)
		}
	}
	for _, g := range h.direct {
		up(g, 0)
	}
	// Depths are negative distances from the host; rebase so that all is 0.
	min := 0
	for _, d := range depth {
		if d < min {
			min = d
		}
	}
	for g, d := range depth {
		depth[g] = d - min
	}
	depth["all"] = 0
	return depth
}

// vars merges a host's variables: "all", then groups from the shallowest
// to the deepest (ties by name), then the host's own, later winning.
func (inv *Inventory) vars(h *invHost) (map[string]string, []string) {
	depth := inv.ancestors(h)
	groups := make([]string, 0, len(depth))
	for g := range depth {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if depth[groups[i]] != depth[groups[j]] {
			return depth[groups[i]] < depth[groups[j]]
		}
		return groups[i] < groups[j]
	})
	out := map[string]string{}
	for _, g := range groups {
		for k, v := range inv.groups[g].vars {
			out[k] = v
		}
	}
	for k, v := range h.vars {
		out[k] = v
	}
	sort.Strings(groups)
	return out, groups
}

// Groups returns the inventory's group names, sorted.
func (inv *Inventory) Groups() []string {
	out := make([]string, 0, len(inv.groups))
	for n := range inv.groups {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Hosts returns the hosts that limit selects (all hosts when limit is
// empty), in inventory order, with their connection variables applied.
//
// limit follows Ansible's --limit: patterns separated by "," or ":";
// each is a group name, a host name, a glob ("web*") or "~regex"; "all"
// and "*" select everything; a pattern starting with "&" keeps only hosts
// also in it and one starting with "!" removes its hosts. A pattern that
// matches nothing is an error, so a typo does not silently skip hosts.
func (inv *Inventory) Hosts(limit string) ([]Host, error) {
	sel, err := inv.selectNames(limit)
	if err != nil {
		return nil, err
	}
	out := make([]Host, 0, len(sel))
	for _, h := range inv.hosts {
		if !sel[h.name] {
			continue
		}
		host, err := inv.resolve(h)
		if err != nil {
			return nil, err
		}
		out = append(out, host)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--limit %q selects no hosts", limit)
	}
	return out, nil
}

func splitLimit(limit string) []string {
	var out []string
	depth := 0
	start := 0
	for i := 0; i < len(limit); i++ {
		switch limit[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',', ':':
			if depth == 0 {
				out = append(out, limit[start:i])
				start = i + 1
			}
		}
	}
	out = append(out, limit[start:])
	var pats []string
	for _, p := range out {
		if p = strings.TrimSpace(p); p != "" {
			pats = append(pats, p)
		}
	}
	return pats
}

func (inv *Inventory) selectNames(limit string) (map[string]bool, error) {
	all := map[string]bool{}
	for _, h := range inv.hosts {
		all[h.name] = true
	}
	pats := splitLimit(limit)
	if len(pats) == 0 {
		return all, nil
	}
	var union, inter, excl []map[string]bool
	for _, p := range pats {
		op := byte(0)
		if p[0] == '!' || p[0] == '&' {
			op, p = p[0], p[1:]
		}
		m, err := inv.match(p)
		if err != nil {
			return nil, err
		}
		switch op {
		case '!':
			excl = append(excl, m)
		case '&':
			inter = append(inter, m)
		default:
			union = append(union, m)
		}
	}
	sel := map[string]bool{}
	if len(union) == 0 {
		sel = all
	}
	for _, m := range union {
		for n := range m {
			sel[n] = true
		}
	}
	for _, m := range inter {
		for n := range sel {
			if !m[n] {
				delete(sel, n)
			}
		}
	}
	for _, m := range excl {
		for n := range m {
			delete(sel, n)
		}
	}
	return sel, nil
}

// match returns the hosts one pattern names: a group's hosts (and its
// children's), or hosts whose name matches.
func (inv *Inventory) match(p string) (map[string]bool, error) {
	out := map[string]bool{}
	if p == "all" || p == "*" {
		for _, h := range inv.hosts {
			out[h.name] = true
		}
		return out, nil
	}
	var re *regexp.Regexp
	if strings.HasPrefix(p, "~") {
		var err error
		if re, err = regexp.Compile(p[1:]); err != nil {
			return nil, fmt.Errorf("--limit %q: %w", p, err)
		}
	} else if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("--limit %q: bad pattern", p)
	}
	matches := func(s string) bool {
		if re != nil {
			return re.MatchString(s)
		}
		ok, _ := path.Match(p, s)
		return ok
	}
	for gname := range inv.groups {
		if matches(gname) {
			inv.collect(gname, out, map[string]bool{})
		}
	}
	for _, h := range inv.hosts {
		if matches(h.name) || matches(nameWithoutPort(h.name)) {
			out[h.name] = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--limit: %q matches no group or host in the inventory", p)
	}
	return out, nil
}

func (inv *Inventory) collect(g string, out, seen map[string]bool) {
	if seen[g] {
		return
	}
	seen[g] = true
	if g == "all" {
		for _, h := range inv.hosts {
			out[h.name] = true
		}
		return
	}
	for _, h := range inv.groups[g].hosts {
		out[h] = true
	}
	for _, c := range inv.groups[g].children {
		inv.collect(c, out, seen)
	}
}

// nameWithoutPort is "web1" for "web1:5986"; other names are returned as
// they are.
func nameWithoutPort(name string) string {
	if strings.Contains(name, "://") {
		return name
	}
	if h, err := ParseHost(name); err == nil && h.Port != 0 {
		return h.Address
	}
	return name
}

// resolve applies the connection variables bitsremote honours.
func (inv *Inventory) resolve(h *invHost) (Host, error) {
	vars, groups := inv.vars(h)
	host, err := ParseHost(h.name)
	if err != nil {
		return Host{}, err
	}
	isURL := strings.Contains(h.name, "://")
	invName := host.Address // the name without its port
	host.Groups = groups
	bad := func(k, why string) error {
		return fmt.Errorf("host %s: %s=%q: %s", h.name, k, vars[k], why)
	}
	if v := vars["ansible_host"]; v != "" {
		host.Address = strings.Trim(v, "[]")
	}
	// A port written with the name is a host variable, above any group's
	// ansible_port (Ansible reads "name:port" that way).
	if _, own := h.vars["ansible_port"]; own || host.Port == 0 || isURL {
		if v := vars["ansible_port"]; v != "" && !isURL {
			n, err := parsePort(v)
			if err != nil {
				return Host{}, bad("ansible_port", err.Error())
			}
			host.Port = n
		}
	}
	switch {
	case isURL:
	case host.Port != 0:
		host.Name = hostPort(invName, host.Port)
	default:
		host.Name = invName
	}
	for _, k := range []string{"ansible_user", "ansible_winrm_user"} {
		if v := vars[k]; v != "" {
			host.User = v
		}
	}
	if v := strings.ToLower(vars["ansible_winrm_scheme"]); v != "" {
		if v != "http" && v != "https" {
			return Host{}, bad("ansible_winrm_scheme", "want http or https")
		}
		host.Scheme = v
	}
	if v := vars["ansible_winrm_path"]; v != "" {
		if !strings.HasPrefix(v, "/") {
			return Host{}, bad("ansible_winrm_path", "want a path starting with /")
		}
		host.Path = v
	}
	if v := vars["ansible_winrm_transport"]; v != "" {
		auth, err := pickTransport(v)
		if err != nil {
			return Host{}, bad("ansible_winrm_transport", err.Error())
		}
		host.Auth = auth
	}
	if v := strings.ToLower(vars["ansible_winrm_message_encryption"]); v != "" {
		if v != "auto" && v != "always" && v != "never" {
			return Host{}, bad("ansible_winrm_message_encryption", "want auto, always or never")
		}
		host.Encryption = v
	}
	// pywinrm's Kerberos service and hostname_override: for a host
	// reached by address (ansible_host=10.0.0.5) whose tickets are for
	// its domain name.
	service, override := vars["ansible_winrm_service"], vars["ansible_winrm_kerberos_hostname_override"]
	if strings.ContainsAny(service, "/@ ") {
		return Host{}, bad("ansible_winrm_service", "want a service name such as HTTP")
	}
	if strings.ContainsAny(override, "/@ ") {
		return Host{}, bad("ansible_winrm_kerberos_hostname_override", "want a host name")
	}
	if service != "" || override != "" {
		host.SPN = cmp.Or(service, "HTTP") + "/" + strings.ToLower(cmp.Or(override, host.Address))
	}
	return host, nil
}

func hostPort(name string, port int) string {
	return net.JoinHostPort(name, strconv.Itoa(port))
}

// pickTransport maps pywinrm's transport names to ours and takes the
// first one we support, as pywinrm tries them in order.
func pickTransport(v string) (string, error) {
	for _, t := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "ntlm":
			return "ntlm", nil
		case "basic", "plaintext", "ssl":
			return "basic", nil
		case "kerberos":
			return "kerberos", nil
		case "certificate":
			return "certificate", nil
		}
	}
	return "", errors.New("no supported transport (want ntlm, basic, plaintext, ssl, kerberos or certificate; credssp is not supported)")
}
