package schema

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Registry holds the schemas a process knows, by fingerprint and by type name in history
// order, and the upcasters it applies. Load fills it from _kastor.schemas; codecs add their
// own schemas. It is safe for concurrent use.
//
// A fingerprint maps to the first schema added with it: schemas sharing a fingerprint
// encode identically, so either decodes the same bytes.
type Registry struct {
	mu        sync.RWMutex
	byFP      map[Fingerprint]*entry
	byName    map[string][]*entry
	seq       int64
	upcasters map[upcasterKey]*Upcaster
	// gen changes whenever upcasters do, so codecs rebuild their cached decode plans.
	gen atomic.Uint64
}

type entry struct {
	s *Schema
	// published orders schemas read from the topic (in topic order) before schemas only
	// added locally (in the order added).
	published bool
	seq       int64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		byFP:      map[Fingerprint]*entry{},
		byName:    map[string][]*entry{},
		upcasters: map[upcasterKey]*Upcaster{},
	}
}

// Add registers schemas known locally (not read from _kastor.schemas). Adding a schema
// whose fingerprint is known does nothing.
func (r *Registry) Add(schemas ...*Schema) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range schemas {
		r.addLocked(s, false)
	}
}

// addPublished registers a schema read from the topic, in topic order; a schema already
// added locally moves to its place in the published history.
func (r *Registry) addPublished(s *Schema) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(s, true)
}

func (r *Registry) addLocked(s *Schema, published bool) {
	r.seq++
	if e, ok := r.byFP[s.Fingerprint()]; ok {
		if published && !e.published {
			e.published, e.seq = true, r.seq
			r.sortLocked(e.s.Name())
		}
		return
	}
	e := &entry{s: s, published: published, seq: r.seq}
	r.byFP[s.Fingerprint()] = e
	r.byName[s.Name()] = append(r.byName[s.Name()], e)
	r.sortLocked(s.Name())
}

func (r *Registry) sortLocked(name string) {
	h := r.byName[name]
	sort.SliceStable(h, func(i, j int) bool {
		if h[i].published != h[j].published {
			return h[i].published
		}
		return h[i].seq < h[j].seq
	})
}

// Schema returns the schema with the fingerprint.
func (r *Registry) Schema(fp Fingerprint) (*Schema, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byFP[fp]
	if !ok {
		return nil, false
	}
	return e.s, true
}

// History returns the schemas of a type, oldest first: those published to _kastor.schemas
// in topic order, then those only added locally.
func (r *Registry) History(name string) []*Schema {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h := r.byName[name]
	out := make([]*Schema, len(h))
	for i, e := range h {
		out[i] = e.s
	}
	return out
}

// Latest returns the newest schema of a type.
func (r *Registry) Latest(name string) (*Schema, bool) {
	h := r.History(name)
	if len(h) == 0 {
		return nil, false
	}
	return h[len(h)-1], true
}

// Schemas returns every schema, grouped by type name (sorted), each type oldest first.
func (r *Registry) Schemas() []*Schema {
	r.mu.RLock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	r.mu.RUnlock()
	sort.Strings(names)
	var out []*Schema
	for _, n := range names {
		out = append(out, r.History(n)...)
	}
	return out
}

// CheckCompatible checks that s can read data written with every other schema of its type
// in the registry, and with every schema of a type that an upcaster renames to s's type
// (see CheckHistory). Upcasters count: an older schema is checked as the upcasters
// registered for it leave its data, so a field renamed by an upcaster is not reported as
// a field added without a default. An upcaster whose output follows the reader schema is
// trusted.
func (r *Registry) CheckCompatible(s *Schema) error {
	var errs []error
	check := func(old *Schema) {
		if old.Fingerprint() == s.Fingerprint() && old.Name() == s.Name() {
			return
		}
		if err := r.checkPair(old, s); err != nil {
			errs = append(errs, err)
		}
	}
	for _, old := range r.History(s.Name()) {
		check(old)
	}
	for _, u := range r.renamesTo(s.Name()) {
		for _, old := range r.History(u.Type) {
			if u.Fingerprint == 0 || u.Fingerprint == old.Fingerprint() {
				check(old)
			}
		}
	}
	return errors.Join(errs...)
}

// checkPair is CheckBackward after the upcasters that apply to w's data.
func (r *Registry) checkPair(w, reader *Schema) error {
	up, err := r.upcastChain(w, reader)
	if err != nil {
		return err
	}
	if len(up.steps) == 0 {
		return CheckBackward(w, reader)
	}
	if up.shape == reader {
		return nil
	}
	b := &resolveBuilder{memo: map[[2]*node]*convBox{}, renamedRoot: up.renamed}
	b.build(up.shape.root, reader.root, "")
	if len(b.problems) == 0 {
		return nil
	}
	return &IncompatibleError{Writer: w, Reader: reader, Problems: b.problems}
}

func (r *Registry) renamesTo(name string) []*Upcaster {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Upcaster
	for _, u := range r.upcasters {
		if u.Rename == name && u.Type != name {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// copyUpcasters gives dst the upcasters of r.
func (r *Registry) copyUpcasters(dst *Registry) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	dst.mu.Lock()
	defer dst.mu.Unlock()
	for k, u := range r.upcasters {
		dst.upcasters[k] = u
	}
	dst.gen.Add(1)
}

// finalType follows the renames of the upcasters that apply to data written with w: the
// type the data ends up as.
func (r *Registry) finalType(w *Schema) string {
	name, fp := w.Name(), w.Fingerprint()
	for range maxUpcasts {
		u := r.upcasterFor(name, fp)
		if u == nil || u.Rename == "" || u.Rename == name {
			return name
		}
		name = u.Rename
		if u.To != nil {
			fp = u.To.Fingerprint()
		}
	}
	return name
}

// AddUpcaster registers an upcaster. Registering a second upcaster for the same type and
// fingerprint is an error: which one applies would be ambiguous.
func (r *Registry) AddUpcaster(u Upcaster) error {
	if err := u.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := upcasterKey{u.Type, u.Fingerprint}
	if prev, dup := r.upcasters[k]; dup {
		return fmt.Errorf("schema: %s is already registered as %s", &u, prev)
	}
	r.upcasters[k] = &u
	r.gen.Add(1)
	return nil
}

func (r *Registry) upcasterFor(name string, fp Fingerprint) *Upcaster {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if u, ok := r.upcasters[upcasterKey{name, fp}]; ok {
		return u
	}
	return r.upcasters[upcasterKey{name, 0}]
}

// DecodeNative decodes data written with the schema fp into goavro's native form for that
// writer schema, without resolution or upcasting: what a tool that has no reader schema
// (the CLI, a generic consumer) can show.
func (r *Registry) DecodeNative(fp Fingerprint, data []byte, lim Limits) (any, *Schema, error) {
	w, ok := r.Schema(fp)
	if !ok {
		return nil, nil, &UnknownSchemaError{Fingerprint: fp}
	}
	v, err := decodeWith(w, data, lim.withDefaults())
	return v, w, err
}

// decodeWith checks data against s's encoding and the limits, then decodes it with goavro.
func decodeWith(s *Schema, data []byte, lim Limits) (any, error) {
	if err := prescan(s.root, data, lim); err != nil {
		return nil, err
	}
	v, _, err := s.codec.NativeFromBinary(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, nil
}

// decodePlan is everything needed to turn bytes written with one schema into native values
// of one reader schema, computed once and cached by the reader's Codec.
type decodePlan struct {
	writer *Schema
	// direct: the writer has the reader's fingerprint, so the reader's own goavro codec
	// decodes the bytes (same encoding; the reader's logical types apply, as Avro says).
	direct bool
	up     upcastPlan
	res    *resolver
	gen    uint64
}

func (r *Registry) plan(fp Fingerprint, reader *Schema) (*decodePlan, error) {
	gen := r.gen.Load()
	w, ok := r.Schema(fp)
	if !ok {
		return nil, &UnknownSchemaError{Fingerprint: fp}
	}
	if fp == reader.Fingerprint() {
		return &decodePlan{writer: w, direct: true, gen: gen}, nil
	}
	up, err := r.upcastChain(w, reader)
	if err != nil {
		return nil, err
	}
	b := &resolveBuilder{memo: map[[2]*node]*convBox{}, conform: up.conform, renamedRoot: up.renamed}
	fn := b.build(up.shape.root, reader.root, "")
	return &decodePlan{writer: w, up: up, res: &resolver{fn: fn, problems: b.problems}, gen: gen}, nil
}

func (p *decodePlan) decode(reader *Schema, data []byte, lim Limits) (any, error) {
	src := p.writer
	if p.direct {
		src = reader
	}
	v, err := decodeWith(src, data, lim)
	if err != nil {
		return nil, err
	}
	if p.direct {
		return v, nil
	}
	if v, err = p.up.apply(v); err != nil {
		return nil, err
	}
	v, err = p.res.resolve(v)
	if err != nil && !errors.Is(err, ErrIncompatible) {
		err = fmt.Errorf("resolving %s to %s: %w", p.up.shape, reader, err)
	}
	return v, err
}
