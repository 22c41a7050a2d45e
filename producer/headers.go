package producer

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Headers returns md as franz-go record headers (kastor's envelope headers).
func Headers(md *kastor.Metadata) []kgo.RecordHeader {
	return AppendHeaders(nil, md)
}

// AppendHeaders appends md's envelope headers to dst.
func AppendHeaders(dst []kgo.RecordHeader, md *kastor.Metadata) []kgo.RecordHeader {
	dst = slices.Grow(dst, 8+len(md.Tags))
	md.EachHeader(func(k string, v []byte) { dst = append(dst, kgo.RecordHeader{Key: k, Value: v}) })
	return dst
}

// Metadata reads kastor's envelope from a record's headers (see kastor.ParseHeaders).
func Metadata(hs []kgo.RecordHeader) (kastor.Metadata, error) {
	kh := make([]kastor.Header, len(hs))
	for i, h := range hs {
		kh[i] = kastor.Header{Key: h.Key, Value: h.Value}
	}
	return kastor.ParseHeaders(kh)
}
