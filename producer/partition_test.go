package producer

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
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

// TestPartitionForMatchesFranzGo checks that franz-go's keyed partitioning (the murmur2
// hasher that its default and sticky-key partitioners share) places records where
// PartitionFor says.
func TestPartitionForMatchesFranzGo(t *testing.T) {
	for _, n := range []int{1, 3, 12, 24, 100} {
		p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
		for i := range 2000 {
			key := []byte("acct-" + strconv.Itoa(i*7919))
			if got, want := p.Partition(&kgo.Record{Key: key}, n), PartitionFor(key, int32(n)); int32(got) != want {
				t.Fatalf("key %q, %d partitions: franz-go picks %d, PartitionFor %d", key, n, got, want)
			}
		}
	}
}

// BenchmarkPartitionFor measures kastor's partitioner beside franz-go's keyed partitioner
// (the peer: what a raw franz-go producer computes per record), in the same run.
func BenchmarkPartitionFor(b *testing.B) {
	key := []byte("bank.account/acct-000123")
	b.Run("kastor", func(b *testing.B) {
		for b.Loop() {
			PartitionFor(key, 24)
		}
	})
	b.Run("franz-go-peer", func(b *testing.B) {
		p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
		r := &kgo.Record{Key: key}
		for b.Loop() {
			p.Partition(r, 24)
		}
	})
}
