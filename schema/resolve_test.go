package schema

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// knownDifferences are cases where kastor deliberately departs from Java's reader, with the
// reason; the compatibility verdicts still agree.
var knownDifferences = map[string]string{
	// Java's reader does not compare record names; the specification says records match
	// when their names do. A renamed event type needs an alias or an upcaster in kastor.
	"record-renamed-no-alias": "kastor refuses to read a record whose name changed without an alias",
}

// TestResolveMatchesJava resolves each case of testdata/resolve.txt and compares the
// compatibility verdict and the value read with Java's (testdata/ResolveGolden.java).
func TestResolveMatchesJava(t *testing.T) {
	cases := readLines(t, "testdata/resolve.txt")
	golden := readLines(t, "testdata/resolve.golden")
	if len(cases) != len(golden) {
		t.Fatalf("%d cases, %d golden lines: regenerate resolve.golden (see ResolveGolden.java)", len(cases), len(golden))
	}
	for i, line := range cases {
		c := strings.Split(line, "\t")
		g := strings.SplitN(golden[i], "\t", 4)
		name := c[0]
		t.Run(name, func(t *testing.T) {
			if g[0] != name {
				t.Fatalf("golden line %d is %q", i+1, g[0])
			}
			w, err := Parse(c[1])
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(c[2])
			if err != nil {
				t.Fatal(err)
			}
			compatErr := CheckBackward(w, r)
			if (compatErr == nil) != (g[1] == "compatible") {
				t.Errorf("CheckBackward = %v; Java says %s", compatErr, g[1])
			}
			if compatErr != nil && !errors.Is(compatErr, ErrIncompatible) {
				t.Errorf("CheckBackward error %T does not match ErrIncompatible", compatErr)
			}
			bin, err := hex.DecodeString(g[2])
			if err != nil {
				t.Fatal(err)
			}
			native, err := decodeWith(w, bin, DefaultLimits)
			if err != nil {
				t.Fatalf("decoding Java's binary: %v", err)
			}
			got, err := newResolver(w.root, r.root, false).resolve(native)
			javaErr := strings.HasPrefix(g[3], "error: ")
			if why, ok := knownDifferences[name]; ok {
				if err == nil {
					t.Errorf("resolved to %v, but %s", got, why)
				}
				return
			}
			if javaErr {
				if err == nil {
					t.Errorf("resolved to %v; Java fails: %s", got, g[3])
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v; Java reads %s", err, g[3])
			}
			want, err := avroJSONNative(r.root, g[3])
			if err != nil {
				t.Fatalf("reading Java's result %s: %v", g[3], err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("resolved\n got %#v\nwant %#v (Java: %s)", got, want, g[3])
			}
			// The result must be a valid value of the reader schema for goavro.
			if _, err := r.codec.BinaryFromNative(nil, got); err != nil {
				t.Errorf("goavro cannot encode the resolved value with the reader schema: %v", err)
			}
		})
	}
}

// avroJSONNative reads a datum in Avro's JSON encoding into goavro's native form. goavro's
// own textual decoder reads bytes and fixed as UTF-8 rather than as code points 0-255, so
// the test uses the specification's rules: those of defaults, except that a union is
// {"branch": value}.
func avroJSONNative(n *node, text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return jsonValue(n, v)
}

func jsonValue(n *node, v any) (any, error) {
	switch n.kind {
	case Union:
		if v == nil {
			return nil, nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("union value %v", v)
		}
		for k, x := range m {
			i, ok := n.branchIndex[k]
			if !ok {
				// Java names logical-type branches by their primitive.
				for j, b := range n.union {
					if b.kind.String() == k {
						i, ok = j, true
					}
				}
			}
			if !ok {
				return nil, fmt.Errorf("no branch %q", k)
			}
			y, err := jsonValue(n.union[i], x)
			return map[string]any{n.union[i].unionKey: y}, err
		}
	case Record:
		m := v.(map[string]any)
		out := map[string]any{}
		for _, f := range n.fields {
			y, err := jsonValue(f.typ, m[f.name])
			if err != nil {
				return nil, err
			}
			out[f.name] = y
		}
		return out, nil
	case Array:
		var out []any
		for _, x := range v.([]any) {
			y, err := jsonValue(n.items, x)
			if err != nil {
				return nil, err
			}
			out = append(out, y)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case Map:
		out := map[string]any{}
		for k, x := range v.(map[string]any) {
			y, err := jsonValue(n.values, x)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	}
	if f, ok := v.(json.Number); ok && (n.kind == Int || n.kind == Long) {
		// Java writes whole doubles as 3.0; ints never have a fraction.
		v = json.Number(strings.TrimSuffix(string(f), ".0"))
	}
	return defaultNative(n, v)
}
