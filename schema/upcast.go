package schema

import (
	"errors"
	"fmt"
)

// Upcaster rewrites data written with an older schema of a type before it is resolved to
// the reader schema. Avro resolution handles added fields (with defaults), removed fields,
// promotions, enum and union changes, and renames declared as aliases; an upcaster handles
// what it cannot: a field renamed without an alias, a value restructured, a type renamed
// (AccountCreated became AccountOpened), a unit changed.
//
// Upcasters apply to decoded records (goavro's map[string]any), after decoding with the
// writer schema and before resolution. They never apply to data written with the reader's
// own schema.
type Upcaster struct {
	// Type is the full name of the writer type the upcaster applies to.
	Type string
	// Fingerprint, if not zero, limits the upcaster to data written with that schema of
	// Type; zero applies it to every schema of Type. An upcaster for a fingerprint wins
	// over one for the whole type.
	Fingerprint Fingerprint
	// Rename, if set, is the type's new full name: after this upcaster, the data is of
	// that type (and upcasters registered for it apply next).
	Rename string
	// Func rewrites the record. It gets a value of its own (decoded for this record), so
	// it may change and return it. nil leaves the record unchanged (a pure rename).
	Func func(native map[string]any) (map[string]any, error)
	// To is the schema Func's output follows. When nil, the output follows the reader
	// schema of the decoding codec (it may omit fields that have defaults, and may use any
	// Go integer or float type for numbers). With no Func, the data still follows the
	// writer schema, under its new name.
	To *Schema
}

type upcasterKey struct {
	typ string
	fp  Fingerprint
}

// String names the upcaster by its type, fingerprint and rename, for messages.
func (u *Upcaster) String() string {
	s := u.Type
	if u.Fingerprint != 0 {
		s += "@" + u.Fingerprint.String()
	}
	if u.Rename != "" {
		s += " -> " + u.Rename
	}
	return "upcaster " + s
}

func (u *Upcaster) validate() error {
	if u.Type == "" {
		return errors.New("schema: upcaster without a Type")
	}
	if u.Func == nil && u.Rename == "" {
		return fmt.Errorf("schema: %s has neither a Func nor a Rename", u)
	}
	if u.Func == nil && u.Rename == u.Type {
		return fmt.Errorf("schema: %s renames the type to itself and has no Func", u)
	}
	if u.Func == nil && u.To != nil {
		return fmt.Errorf("schema: %s has a To schema but no Func to produce it", u)
	}
	if u.To != nil && u.Rename != "" && u.To.Name() != u.Rename {
		return fmt.Errorf("schema: %s renames to %s but its To schema is %s", u, u.Rename, u.To.Name())
	}
	if u.To != nil && u.To.Kind() != Record {
		return fmt.Errorf("schema: %s: To must be a record schema, not %s", u, u.To.Kind())
	}
	return nil
}

// maxUpcasts bounds a chain of upcasters, so a cycle of renames is an error, not a hang.
const maxUpcasts = 32

// upcastPlan is the upcasters that apply to one writer schema on the way to a reader, and
// the schema their output follows.
type upcastPlan struct {
	steps   []*Upcaster
	shape   *Schema // the schema the data follows after the steps
	renamed bool    // the type was renamed without a Func: data follows shape, under a new name
	conform bool    // a Func produced the data: values must be checked, not trusted
}

// upcastChain finds the upcasters for data written with w and read with reader.
func (r *Registry) upcastChain(w, reader *Schema) (upcastPlan, error) {
	p := upcastPlan{shape: w}
	name, fp := w.Name(), w.Fingerprint()
	for {
		if fp == reader.Fingerprint() && name == reader.Name() {
			return p, nil
		}
		u := r.upcasterFor(name, fp)
		if u == nil {
			return p, nil
		}
		if len(p.steps) == maxUpcasts {
			return p, fmt.Errorf("schema: more than %d upcasters chained from %s (a cycle of renames?)", maxUpcasts, w)
		}
		p.steps = append(p.steps, u)
		if u.Rename != "" {
			name = u.Rename
		}
		switch {
		case u.Func == nil:
			p.renamed = true
			// A renamed type keeps the writer's fingerprint for upcasters of the new name.
		case u.To != nil:
			p.shape, p.conform, p.renamed = u.To, true, false
			fp = u.To.Fingerprint()
			name = u.To.Name()
		default:
			p.shape, p.conform, p.renamed = reader, true, false
			return p, nil
		}
	}
}

func (p upcastPlan) apply(native any) (any, error) {
	for _, u := range p.steps {
		if u.Func == nil {
			continue
		}
		m, ok := native.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema: %s: the data is %T, not a record", u, native)
		}
		out, err := u.Func(m)
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", u, err)
		}
		native = out
	}
	return native, nil
}
