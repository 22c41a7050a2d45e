package schema

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// TestFingerprintsMatchJava checks canonical forms and fingerprints against the values
// Apache Avro's Java implementation computes (testdata/FingerprintGolden.java).
func TestFingerprintsMatchJava(t *testing.T) {
	schemas := readLines(t, "testdata/schemas.txt")
	golden := readLines(t, "testdata/fingerprints.golden")
	if len(schemas) != len(golden) || len(schemas) < 40 {
		t.Fatalf("%d schemas but %d golden lines: regenerate fingerprints.golden (see FingerprintGolden.java)", len(schemas), len(golden))
	}
	for i, text := range schemas {
		hexFP, canonical, ok := strings.Cut(golden[i], "\t")
		if !ok {
			t.Fatalf("golden line %d: no tab", i+1)
		}
		want, err := ParseFingerprint(hexFP)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(text)
		if err != nil {
			t.Errorf("Parse(%s): %v", text, err)
			continue
		}
		if s.Canonical() != canonical {
			t.Errorf("canonical form of %s\n got %s\nwant %s", text, s.Canonical(), canonical)
		}
		if s.Fingerprint() != want {
			t.Errorf("fingerprint of %s = %s, Java says %s", text, s.Fingerprint(), want)
		}
	}
}

// TestFingerprintKnownValues pins values published with the Avro specification and
// implementations, independent of the golden file.
func TestFingerprintKnownValues(t *testing.T) {
	if got := FingerprintOf(nil); got != 0xc15d213aa4d7a795 {
		t.Errorf("empty fingerprint = %s, want the spec's EMPTY c15d213aa4d7a795", got)
	}
	s := MustParse(`{"type": "int"}`)
	if s.Canonical() != `"int"` || s.Fingerprint() != 0x7275d51a3f395c8f {
		t.Errorf(`"int": canonical %s fingerprint %s, want "int" 7275d51a3f395c8f`, s.Canonical(), s.Fingerprint())
	}
	// goavro computes its own fingerprint; for schemas without logical types it agrees.
	c, err := goavro.NewCodec(`"string"`)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(c.Rabin) != uint64(MustParse(`"string"`).Fingerprint()) {
		t.Errorf("goavro's fingerprint of \"string\" %x differs from ours", c.Rabin)
	}
}

func TestFingerprintString(t *testing.T) {
	fp := Fingerprint(0x00ab)
	if fp.String() != "00000000000000ab" {
		t.Errorf("String = %q", fp.String())
	}
	back, err := ParseFingerprint(fp.String())
	if err != nil || back != fp {
		t.Errorf("ParseFingerprint(%q) = %v, %v", fp.String(), back, err)
	}
	for _, bad := range []string{"", "ab", "00000000000000ag", "+0000000000000ab", "00000000000000ab0"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
