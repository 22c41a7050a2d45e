package gateway

import "github.com/kastor-dev/kastor"

// Encoded is kastor.Encoded: a payload with its type name and writer fingerprint.
type Encoded = kastor.Encoded

// Codec is kastor.Codec: how the gateway encodes and decodes commands, events and states.
type Codec[T any] = kastor.Codec[T]
