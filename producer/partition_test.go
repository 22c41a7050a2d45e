package producer

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPartitionForMatchesJavaClient checks Murmur2 and PartitionFor against values printed by
// Apache Kafka's Java producer (testdata/Murmur2Golden.java).
func TestPartitionForMatchesJavaClient(t *testing.T) {
	f, err := os.Open("testdata/murmur2.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := []int32{1, 2, 3, 12, 24, 100}
	sc := bufio.NewScanner(f)
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 2+len(counts) {
			t.Fatalf("bad golden line %q", line)
		}
		key, err := hex.DecodeString(cols[0])
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseInt(cols[1], 10, 32)
		if got := Murmur2(key); got != int32(want) {
			t.Errorf("Murmur2(%q) = %d, Java says %d", key, got, want)
		}
		for i, n := range counts {
			wantP, _ := strconv.ParseInt(cols[2+i], 10, 32)
			if got := PartitionFor(key, n); got != int32(wantP) {
				t.Errorf("PartitionFor(%q, %d) = %d, Java says %d", key, n, got, wantP)
			}
		}
		rows++
	}
	if rows < 300 {
		t.Fatalf("only %d golden rows read", rows)
	}
}

func FuzzPartitionForInRange(f *testing.F) {
	f.Add([]byte("acct-1"), int32(12))
	f.Fuzz(func(t *testing.T, key []byte, n int32) {
		if n <= 0 {
			return
		}
		if p := PartitionFor(key, n); p < 0 || p >= n {
			t.Fatalf("PartitionFor(%x, %d) = %d out of range", key, n, p)
		}
	})
}
