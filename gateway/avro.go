package gateway

import "github.com/kastor-dev/kastor/schema"

// AvroTypes adapts a set of Avro codecs sharing an interface (an aggregate's commands or
// events) to a gateway Codec: encoding picks the codec by the value's Go type, decoding by
// the record's type name and writer fingerprint, through schema resolution and upcasters.
func AvroTypes[I any](ts *schema.Types[I]) Codec[I] { return avroTypes[I]{ts} }

type avroTypes[I any] struct{ ts *schema.Types[I] }

func (a avroTypes[I]) Encode(v I) (Encoded, error) {
	name, fp, data, err := a.ts.Encode(v)
	return Encoded{Type: name, Fingerprint: uint64(fp), Data: data}, err
}

func (a avroTypes[I]) Decode(e Encoded) (I, error) {
	return a.ts.Decode(e.Type, schema.Fingerprint(e.Fingerprint), e.Data)
}

// AvroCodec adapts the Avro codec of one Go type (an aggregate's state) to a gateway Codec.
func AvroCodec[T any](c *schema.Codec[T]) Codec[T] { return avroCodec[T]{c} }

type avroCodec[T any] struct{ c *schema.Codec[T] }

func (a avroCodec[T]) Encode(v T) (Encoded, error) {
	data, err := a.c.Encode(v)
	s := a.c.Schema()
	return Encoded{Type: s.Name(), Fingerprint: uint64(s.Fingerprint()), Data: data}, err
}

func (a avroCodec[T]) Decode(e Encoded) (T, error) {
	return a.c.Decode(schema.Fingerprint(e.Fingerprint), e.Data)
}
