package schema

import "github.com/kastor-dev/kastor"

// TypesCodec adapts a family of Avro codecs sharing an interface (an aggregate's commands
// or events) to kastor.Codec: encoding picks the codec by the value's Go type, decoding by
// the record's type name and writer fingerprint, through resolution and upcasters.
func TypesCodec[I any](ts *Types[I]) kastor.Codec[I] { return typesCodec[I]{ts} }

type typesCodec[I any] struct{ ts *Types[I] }

func (a typesCodec[I]) Encode(v I) (kastor.Encoded, error) {
	name, fp, data, err := a.ts.Encode(v)
	return kastor.Encoded{Type: name, Fingerprint: uint64(fp), Data: data}, err
}

func (a typesCodec[I]) Decode(e kastor.Encoded) (I, error) {
	return a.ts.Decode(e.Type, Fingerprint(e.Fingerprint), e.Data)
}

// ValueCodec adapts the Avro codec of one Go type (an aggregate's state, or a read model's
// row) to kastor.Codec.
func ValueCodec[T any](c *Codec[T]) kastor.Codec[T] { return valueCodec[T]{c} }

type valueCodec[T any] struct{ c *Codec[T] }

func (a valueCodec[T]) Encode(v T) (kastor.Encoded, error) {
	data, err := a.c.Encode(v)
	s := a.c.Schema()
	return kastor.Encoded{Type: s.Name(), Fingerprint: uint64(s.Fingerprint()), Data: data}, err
}

func (a valueCodec[T]) Decode(e kastor.Encoded) (T, error) {
	return a.c.Decode(Fingerprint(e.Fingerprint), e.Data)
}
