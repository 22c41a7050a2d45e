package producer

import "encoding/binary"

// Murmur2 is the 32-bit MurmurHash2 variant of Apache Kafka's Java client
// (org.apache.kafka.common.utils.Utils.murmur2, seed 0x9747b28c), bit for bit.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// PartitionFor returns the partition Kafka's default partitioner assigns to a non-nil key
// among n partitions: toPositive(murmur2(key)) % n. toPositive clears the sign bit (it is
// not an absolute value), exactly as the Java client does. n must be positive. Tests check
// it against values the Java client printed (see decision 7).
func PartitionFor(key []byte, n int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % n
}
