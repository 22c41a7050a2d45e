package gateway

import "github.com/kastor-dev/kastor/schema"

// AvroTypes is schema.TypesCodec: an aggregate's commands or events as a gateway Codec,
// decoded by type name and writer fingerprint through resolution and upcasters.
func AvroTypes[I any](ts *schema.Types[I]) Codec[I] { return schema.TypesCodec(ts) }

// AvroCodec is schema.ValueCodec: an aggregate's state as a gateway Codec.
func AvroCodec[T any](c *schema.Codec[T]) Codec[T] { return schema.ValueCodec(c) }
