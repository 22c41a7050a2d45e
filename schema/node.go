package schema

// Kind is an Avro schema type: one of the eight primitives or six complex types.
type Kind uint8

// The Avro types. "error" schemas (records in protocols) parse as Record.
const (
	Null Kind = iota + 1
	Boolean
	Int
	Long
	Float
	Double
	Bytes
	String
	Record
	Enum
	Array
	Map
	Union
	Fixed
)

var kindNames = [...]string{
	Null: "null", Boolean: "boolean", Int: "int", Long: "long", Float: "float", Double: "double",
	Bytes: "bytes", String: "string", Record: "record", Enum: "enum", Array: "array", Map: "map",
	Union: "union", Fixed: "fixed",
}

// String returns the Avro name of the type ("long", "record", ...).
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "invalid"
}

var primitiveKinds = map[string]Kind{
	"null": Null, "boolean": Boolean, "int": Int, "long": Long, "float": Float,
	"double": Double, "bytes": Bytes, "string": String,
}

// named reports whether the kind has a name (record, enum, fixed).
func (k Kind) named() bool { return k == Record || k == Enum || k == Fixed }

// Logical types kastor recognises (others are ignored, as the Avro specification requires
// of unknown logical types). goavro turns the time types into time.Time and time.Duration
// values, and kastor's native values follow it; decimals stay bytes in native values (goavro
// is not asked to convert them) and become big.Rat only in Go bindings.
const (
	logicalTimestampMillis = "timestamp-millis" // long <-> time.Time (UTC)
	logicalTimestampMicros = "timestamp-micros" // long <-> time.Time (UTC)
	logicalTimeMillis      = "time-millis"      // int <-> time.Duration
	logicalTimeMicros      = "time-micros"      // long <-> time.Duration
	logicalDate            = "date"             // int <-> time.Time (UTC midnight)
	logicalDecimal         = "decimal"          // bytes or fixed, unscaled two's complement
)

// node is one schema in kastor's parsed form. Named types are shared: every reference to
// a record, enum or fixed points at its definition's node, so recursive schemas are cyclic
// graphs.
type node struct {
	kind Kind

	// logical is the logical type as goavro interprets it ("" for none or ignored);
	// precision and scale qualify decimals.
	logical          string
	precision, scale int

	// Named types.
	fullName string
	space    string
	aliases  []string // full names

	fields     []*field // record
	fieldIndex map[string]int

	symbols     []string // enum
	symbolIndex map[string]int
	enumDefault string
	hasEnumDef  bool

	items  *node   // array
	values *node   // map
	union  []*node // union branches
	size   int     // fixed

	// unionKey is the key goavro uses for this schema as a union branch in its native
	// form ({"key": value}).
	unionKey string
	// minSize is a lower bound of the encoded size of any datum of this schema, used to
	// bound collection lengths before decoding.
	minSize int
	// nullIndex is the index of a union's null branch, -1 if none.
	nullIndex int
	// branchIndex maps a union's branch keys to their index.
	branchIndex map[string]int
}

// field is a record field.
type field struct {
	name    string
	aliases []string
	typ     *node
	// hasDefault: the field declares a default; def is it in goavro's native form for typ.
	hasDefault bool
	def        any
	defJSON    any // the default as written in the schema
	pos        int
}

// name returns the full name of a named type, or the kind's name.
func (n *node) name() string {
	if n.kind.named() {
		return n.fullName
	}
	if n.logical != "" {
		return n.kind.String() + " (" + n.logical + ")"
	}
	return n.kind.String()
}

// shortName returns the unqualified name of a named type.
func shortName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '.' {
			return full[i+1:]
		}
	}
	return full
}
