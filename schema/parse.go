package schema

import (
	"encoding/json"
	"fmt"
	"strings"
)

// parser turns schema JSON into nodes, applying the Avro specification's naming rules:
// full names from the name, the namespace attribute or the enclosing namespace; named types
// defined once and referenced by name afterwards (so recursion works through references).
type parser struct {
	named map[string]*node
	// defaults waits for the whole schema: a default may be of a record type whose
	// definition is still being parsed when the field is.
	defaults []pendingDefault
}

type pendingDefault struct {
	record *node
	field  *field
}

// parseNode parses schema JSON into its root node.
func parseNode(text string) (*node, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // keep integer defaults exact (a long default may not fit a float64)
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid JSON: trailing data after the schema")
	}
	p := &parser{named: map[string]*node{}}
	n, err := p.parse(v, "")
	if err != nil {
		return nil, err
	}
	for _, d := range p.defaults {
		nat, err := defaultNative(d.field.typ, d.field.defJSON)
		if err != nil {
			return nil, fmt.Errorf("record %q: field %q: invalid default %s: %w", d.record.fullName, d.field.name, compactJSON(d.field.defJSON), err)
		}
		d.field.def = nat
	}
	computeMinSizes(n)
	return n, nil
}

func (p *parser) parse(v any, space string) (*node, error) {
	switch t := v.(type) {
	case string:
		return p.reference(t, space)
	case []any:
		return p.parseUnion(t, space)
	case map[string]any:
		return p.parseObject(t, space)
	default:
		return nil, fmt.Errorf("a schema must be a type name, an object or an array (union), not %s", jsonKind(v))
	}
}

// reference resolves a type name: a primitive, or a named type defined earlier.
func (p *parser) reference(name, space string) (*node, error) {
	if k, ok := primitiveKinds[name]; ok {
		return &node{kind: k, unionKey: name}, nil
	}
	switch name {
	case "record", "error", "enum", "array", "map", "fixed":
		return nil, fmt.Errorf("%q must be the type of a schema object, not a bare type name", name)
	}
	if strings.Contains(name, ".") {
		if n, ok := p.named[name]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q (named types must be defined before they are referenced)", name)
	}
	// As Java does: the enclosing namespace first, then the null namespace.
	if space != "" {
		if n, ok := p.named[space+"."+name]; ok {
			return n, nil
		}
	}
	if n, ok := p.named[name]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("unknown type %q (named types must be defined before they are referenced)", name)
}

func (p *parser) parseUnion(branches []any, space string) (*node, error) {
	n := &node{kind: Union, unionKey: "union", nullIndex: -1, branchIndex: map[string]int{}}
	seen := map[string]bool{}
	for i, b := range branches {
		bn, err := p.parse(b, space)
		if err != nil {
			return nil, fmt.Errorf("union branch %d: %w", i+1, err)
		}
		if bn.kind == Union {
			return nil, fmt.Errorf("union branch %d: a union may not directly contain a union", i+1)
		}
		// The specification allows one branch per unnamed type and one per named type's
		// full name.
		id := bn.kind.String()
		if bn.kind.named() {
			id = bn.fullName
		}
		if seen[id] {
			return nil, fmt.Errorf("union branch %d: duplicate %s in union", i+1, id)
		}
		seen[id] = true
		if _, dup := n.branchIndex[bn.unionKey]; dup {
			return nil, fmt.Errorf("union branch %d: duplicate branch %s in union", i+1, bn.unionKey)
		}
		n.branchIndex[bn.unionKey] = i
		if bn.kind == Null {
			n.nullIndex = i
		}
		n.union = append(n.union, bn)
	}
	if len(n.union) == 0 {
		return nil, fmt.Errorf("a union must have at least one branch")
	}
	return n, nil
}

func (p *parser) parseObject(m map[string]any, space string) (*node, error) {
	t, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf("schema object has no \"type\"")
	}
	var typ string
	switch tt := t.(type) {
	case string:
		typ = tt
	case map[string]any, []any:
		// {"type": {...}} wraps a schema; Java and goavro both read it as the inner schema.
		return p.parse(tt, space)
	default:
		return nil, fmt.Errorf("\"type\" must be a string, an object or an array, not %s", jsonKind(t))
	}
	switch typ {
	case "record", "error":
		return p.parseRecord(m, space)
	case "enum":
		return p.parseEnum(m, space)
	case "fixed":
		return p.parseFixed(m, space)
	case "array":
		items, ok := m["items"]
		if !ok {
			return nil, fmt.Errorf("array schema has no \"items\"")
		}
		in, err := p.parse(items, space)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &node{kind: Array, items: in, unionKey: "array"}, nil
	case "map":
		values, ok := m["values"]
		if !ok {
			return nil, fmt.Errorf("map schema has no \"values\"")
		}
		vn, err := p.parse(values, space)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &node{kind: Map, values: vn, unionKey: "map"}, nil
	}
	k, ok := primitiveKinds[typ]
	if !ok {
		// {"type": "some.Named"}: a reference in object form.
		return p.reference(typ, space)
	}
	n := &node{kind: k, unionKey: typ}
	lt, _ := m["logicalType"].(string)
	switch {
	case k == Long && (lt == logicalTimestampMillis || lt == logicalTimestampMicros || lt == logicalTimeMicros),
		k == Int && (lt == logicalTimeMillis || lt == logicalDate):
		n.logical = lt
		n.unionKey = typ + "." + lt
	case k == Bytes && lt == logicalDecimal:
		if err := parseDecimal(n, m); err != nil {
			return nil, err
		}
	case k == String && lt == "validated-string":
		return nil, fmt.Errorf("logical type \"validated-string\" is a goavro extension, not Avro; kastor does not support it")
	}
	return n, nil
}

func parseDecimal(n *node, m map[string]any) error {
	p, ok := m["precision"].(json.Number)
	if !ok {
		return fmt.Errorf("decimal without a numeric \"precision\"")
	}
	prec, err := p.Int64()
	if err != nil || prec < 1 || prec > 1<<20 {
		return fmt.Errorf("decimal precision %s must be a positive integer", p)
	}
	scale := int64(0)
	if s, ok := m["scale"]; ok {
		sn, ok := s.(json.Number)
		if !ok {
			return fmt.Errorf("decimal \"scale\" must be a number")
		}
		if scale, err = sn.Int64(); err != nil || scale < 0 || scale > prec {
			return fmt.Errorf("decimal scale %s must be an integer between 0 and the precision %d", sn, prec)
		}
	}
	n.logical, n.precision, n.scale = logicalDecimal, int(prec), int(scale)
	return nil
}

// define computes a named type's full name and namespace and registers it.
func (p *parser) define(n *node, m map[string]any, space string) (string, error) {
	nameV, ok := m["name"].(string)
	if !ok {
		return "", fmt.Errorf("%s schema has no \"name\" string", n.kind)
	}
	var full, ns string
	if i := strings.LastIndexByte(nameV, '.'); i >= 0 {
		full, ns = nameV, nameV[:i]
	} else if nsV, present := m["namespace"]; present && nsV != nil {
		s, ok := nsV.(string)
		if !ok {
			return "", fmt.Errorf("%s %q: \"namespace\" must be a string", n.kind, nameV)
		}
		if s == "" && space != "" {
			// The specification reads an explicit empty namespace as the null namespace;
			// goavro reads it as "inherit", so the two would name the type differently.
			return "", fmt.Errorf("%s %q: an explicit empty namespace inside namespace %q is not supported; give the type a full name instead", n.kind, nameV, space)
		}
		ns = s
	} else {
		ns = space
	}
	if full == "" {
		full = nameV
		if ns != "" {
			full = ns + "." + nameV
		}
	}
	if err := validFullName(full); err != nil {
		return "", fmt.Errorf("%s name %q: %w", n.kind, full, err)
	}
	if _, ok := primitiveKinds[full]; ok {
		return "", fmt.Errorf("%s name %q: a primitive type name cannot be redefined", n.kind, full)
	}
	if _, dup := p.named[full]; dup {
		return "", fmt.Errorf("%s %q is defined twice", n.kind, full)
	}
	n.fullName, n.space, n.unionKey = full, ns, full
	aliases, err := stringList(m, "aliases")
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", n.kind, full, err)
	}
	for _, a := range aliases {
		if !strings.Contains(a, ".") && ns != "" {
			a = ns + "." + a
		}
		if err := validFullName(a); err != nil {
			return "", fmt.Errorf("%s %q: alias %q: %w", n.kind, full, a, err)
		}
		n.aliases = append(n.aliases, a)
	}
	p.named[full] = n
	return ns, nil
}

func (p *parser) parseRecord(m map[string]any, space string) (*node, error) {
	n := &node{kind: Record, fieldIndex: map[string]int{}}
	ns, err := p.define(n, m, space)
	if err != nil {
		return nil, err
	}
	fs, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("record %q: \"fields\" must be an array", n.fullName)
	}
	for i, fv := range fs {
		fm, ok := fv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %q: field %d is not an object", n.fullName, i+1)
		}
		name, ok := fm["name"].(string)
		if !ok {
			return nil, fmt.Errorf("record %q: field %d has no \"name\" string", n.fullName, i+1)
		}
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("record %q: field name %q: %w", n.fullName, name, err)
		}
		if _, dup := n.fieldIndex[name]; dup {
			return nil, fmt.Errorf("record %q: field %q is defined twice", n.fullName, name)
		}
		tv, ok := fm["type"]
		if !ok {
			return nil, fmt.Errorf("record %q: field %q has no \"type\"", n.fullName, name)
		}
		ft, err := p.parse(tv, ns)
		if err != nil {
			return nil, fmt.Errorf("record %q: field %q: %w", n.fullName, name, err)
		}
		f := &field{name: name, typ: ft, pos: i}
		if f.aliases, err = stringList(fm, "aliases"); err != nil {
			return nil, fmt.Errorf("record %q: field %q: %w", n.fullName, name, err)
		}
		if dv, ok := fm["default"]; ok {
			f.hasDefault = true
			f.defJSON = dv // parseNode converts it once every type is known
			p.defaults = append(p.defaults, pendingDefault{n, f})
		}
		n.fieldIndex[name] = i
		n.fields = append(n.fields, f)
	}
	return n, nil
}

func (p *parser) parseEnum(m map[string]any, space string) (*node, error) {
	n := &node{kind: Enum, symbolIndex: map[string]int{}}
	if _, err := p.define(n, m, space); err != nil {
		return nil, err
	}
	raw, ok := m["symbols"].([]any)
	if !ok {
		return nil, fmt.Errorf("enum %q: \"symbols\" must be an array", n.fullName)
	}
	for _, s := range raw {
		sym, ok := s.(string)
		if !ok {
			return nil, fmt.Errorf("enum %q: symbols must be strings", n.fullName)
		}
		if err := validName(sym); err != nil {
			return nil, fmt.Errorf("enum %q: symbol %q: %w", n.fullName, sym, err)
		}
		if _, dup := n.symbolIndex[sym]; dup {
			return nil, fmt.Errorf("enum %q: duplicate symbol %q", n.fullName, sym)
		}
		n.symbolIndex[sym] = len(n.symbols)
		n.symbols = append(n.symbols, sym)
	}
	if len(n.symbols) == 0 {
		return nil, fmt.Errorf("enum %q has no symbols", n.fullName)
	}
	if d, ok := m["default"]; ok {
		ds, ok := d.(string)
		if !ok {
			return nil, fmt.Errorf("enum %q: \"default\" must be a symbol", n.fullName)
		}
		if _, ok := n.symbolIndex[ds]; !ok {
			return nil, fmt.Errorf("enum %q: default %q is not one of its symbols", n.fullName, ds)
		}
		n.enumDefault, n.hasEnumDef = ds, true
	}
	return n, nil
}

func (p *parser) parseFixed(m map[string]any, space string) (*node, error) {
	n := &node{kind: Fixed}
	if _, err := p.define(n, m, space); err != nil {
		return nil, err
	}
	sn, ok := m["size"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("fixed %q: \"size\" must be a number", n.fullName)
	}
	size, err := sn.Int64()
	if err != nil || size < 0 || size > 1<<30 {
		return nil, fmt.Errorf("fixed %q: size %s must be a non-negative integer", n.fullName, sn)
	}
	n.size = int(size)
	if lt, _ := m["logicalType"].(string); lt == logicalDecimal {
		if err := parseDecimal(n, m); err != nil {
			return nil, fmt.Errorf("fixed %q: %w", n.fullName, err)
		}
	}
	return n, nil
}

// computeMinSizes sets every node's minSize: a lower bound of the bytes a datum takes.
// Recursive records are resolved by iterating from zero towards the fixed point; every
// iteration is a valid lower bound, so the iterations are capped (a record that contains
// itself without a union or array would otherwise grow by a byte per iteration, forever).
func computeMinSizes(root *node) {
	var all []*node
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, f := range n.fields {
			walk(f.typ)
		}
		if n.items != nil {
			walk(n.items)
		}
		if n.values != nil {
			walk(n.values)
		}
		for _, b := range n.union {
			walk(b)
		}
		all = append(all, n) // children first
	}
	walk(root)
	for changed, rounds := true, 0; changed && rounds < 64; rounds++ {
		changed = false
		for _, n := range all {
			m := 0
			switch n.kind {
			case Null:
			case Boolean, Int, Long, Bytes, String, Enum, Array, Map:
				m = 1
			case Float:
				m = 4
			case Double:
				m = 8
			case Fixed:
				m = n.size
			case Union:
				small := -1
				for _, b := range n.union {
					if small < 0 || b.minSize < small {
						small = b.minSize
					}
				}
				m = 1 + small
			case Record:
				for _, f := range n.fields {
					m = min(m+f.typ.minSize, 1<<30)
				}
			}
			if m != n.minSize {
				n.minSize, changed = m, true
			}
		}
	}
}

func validName(s string) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("names must match [A-Za-z_][A-Za-z0-9_]*")
		}
	}
	return nil
}

func validFullName(s string) error {
	for _, part := range strings.Split(s, ".") {
		if err := validName(part); err != nil {
			return err
		}
	}
	return nil
}

func stringList(m map[string]any, key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	raw, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%q must be an array of strings", key)
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		s, ok := r.(string)
		if !ok {
			return nil, fmt.Errorf("%q must be an array of strings", key)
		}
		out = append(out, s)
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// compactJSON quotes a schema fragment in an error message.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
