// Package schema holds kastor's Avro layer: schemas and their CRC-64-AVRO fingerprints,
// Go bindings, Avro schema resolution, upcasters, the backward-compatibility check, and the
// _kastor.schemas topic.
//
// # Envelope
//
// Every event, command and state value is the Avro binary encoding of one datum (goavro/v2).
// Its record carries two headers: kastor.type, the type name (the schema's full name), and
// kastor.schema, the writer schema's fingerprint as 16 hexadecimal digits. The fingerprint
// is the CRC-64-AVRO (Rabin) hash of the schema's Parsing Canonical Form, as Java's
// SchemaNormalization.parsingFingerprint64 computes it, so any Avro implementation can
// find the schema again.
//
// # Writing
//
// A service parses its schemas, binds each Go type with NewCodec, and at startup calls
// Publish: it loads _kastor.schemas, refuses any schema that cannot read the data of every
// earlier schema of its type (naming the type and the field), and writes the new ones.
// Codec.Encode and Codec.Headers then make the record.
//
// # Binding Go types
//
// NewCodec binds a Go type to a schema once, checking every field, and its Codec encodes
// and decodes through that binding. Each Avro type binds to these Go types:
//
//	Avro                          Go
//	boolean                       bool
//	int                           int, int32, int64
//	long                          int, int64
//	float                         float32, float64
//	double                        float64
//	string                        string (or a named string type)
//	bytes                         []byte
//	enum                          string or a named string type (values are checked)
//	fixed                         []byte or [N]byte with N the size
//	array                         slice
//	map                           map[string]V (or a named string key type)
//	record                        struct (fields by `avro:"name"` tag or default name)
//	["null", T] (any order)       *T, or a slice or map (nil is null), or T (null is zero)
//	long timestamp-millis/micros  time.Time (UTC when decoded), or int64
//	int date                      time.Time
//	int time-millis, long
//	time-micros                   time.Duration
//	bytes or fixed decimal        big.Rat (or *big.Rat), or []byte (the unscaled bytes)
//	anything                      any: goavro's native value, unchanged
//
// A struct field's Avro name is its `avro:"name"` tag, else DefaultFieldName of its Go
// name ("Amount" -> "amount", "AccountID" -> "accountID"). `avro:"-"` and unexported
// fields are skipped; embedded structs without a tag contribute their fields. Every
// remaining Go field must exist in the record; record fields without a Go field must have
// a default, which encoding writes. Options after the name in the tag
// (`avro:"amount,default=0"`) are Derive's; NewCodec ignores them.
//
// # Deriving schemas
//
// The schemas need not be written by hand: Derive writes the schema of a Go struct (the
// record named by its EventType method, fields named as bindings name them, tag options
// for defaults and logical types), and DeriveTypes registers a family of Go types with
// their derived schemas in one call:
//
//	events, err := schema.DeriveTypes[kastor.Event](reg, "event",
//		schema.Of[Opened](), schema.Of[Deposited](), schema.Of[Closed]())
//
// Derive maps Go types to Avro types as bindings read them, restricted to the Go types
// that hold every value of their Avro type, so that data from any compatible writer
// decodes:
//
//	Go                                  Avro
//	bool                                boolean
//	int32                               int
//	int, int64                          long
//	float32                             float
//	float64                             double
//	string (or a named string type)     string
//	[]byte                              bytes
//	named [N]byte type                  fixed of size N, named after the Go type
//	time.Time                           long timestamp-millis
//	time.Duration                       long (nanoseconds)
//	big.Rat                             bytes decimal (tag options precision=P, scale=S)
//	*T                                  ["null", T] with default null
//	[]T                                 array of T
//	map[string]V (or named string key)  map of V
//	struct                              record
//
// Anything else is a *DeriveError naming the field: int8, int16 and the unsigned integers
// (Avro has none; an int8 cannot hold every Avro int: use int32 or int64), interfaces,
// channels, functions, complex numbers, arrays other than named byte arrays, maps with
// other keys, anonymous structs, pointers to pointers.
//
// Options follow the name in the tag, separated by commas:
//
//	default          the field's default is its Go zero value (a record's: each field's
//	                 default or zero value; a time.Time's: the zero time)
//	default=VALUE    the field's default, as Avro JSON: `avro:"count,default=1"`,
//	                 `avro:",default=[]"`. It takes the rest of the tag, commas included,
//	                 so it comes last. For string fields a bare value is the string itself
//	                 (`avro:"currency,default=EUR"`); quote it to write JSON.
//	                 On a pointer field a non-null default puts T first: [T, "null"].
//	alias=NAME       a former name of the field (repeatable), for data written before a
//	                 rename
//	timestamp-micros, date            time.Time as long timestamp-micros or int date
//	time-millis, time-micros          time.Duration as int time-millis or long time-micros
//	precision=P, scale=S              big.Rat as bytes decimal(P, S); precision is required
//
// Options on a pointer, slice or map field apply to its elements.
//
// A derived schema is an ordinary Schema: its canonical form and fingerprint are those of
// the same schema written by hand, and it evolves by the same rules, so a field added to
// a type in use needs a default (`avro:"currency,default=EUR"`).
//
// # Reading
//
// Decoding never needs the producer's code: the writer schema is looked up by fingerprint
// in a Registry (filled by Load from _kastor.schemas), the bytes are decoded with it,
// upcasters registered for the writer type rewrite what Avro resolution cannot express
// (a field or type renamed without an alias, a restructured value), and the result is
// resolved to the reader schema by the Avro specification's rules: fields matched by name
// or alias, defaults for fields the writer lacks, numeric promotion, enum and union rules.
// Errors are *kastor.UndecodableError values naming the type and the fingerprint.
//
// kastor, not goavro, computes canonical forms and fingerprints, resolves schemas (goavro
// does not), and checks every input against the writer schema before goavro sees it, so
// hostile input gives an error, not a huge allocation (see Limits). A Codec encodes, and
// decodes data written with its own schema, without goavro's intermediate maps. See
// decision 14.
//
// # Compatibility with other Avro implementations
//
// Fingerprints, canonical forms, resolution and the compatibility verdicts are checked
// against Apache Avro's Java implementation. kastor departs from Java's reader in one
// place: a record whose name changed without an alias is not read (the specification's
// rule; Java does not check record names), because an event type's name is part of its
// meaning.
package schema
