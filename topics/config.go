package topics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultFile is the topic file the CLI reads when none is named.
const DefaultFile = "kastor.yaml"

// Defaults for the settings a topic file may leave out. They are the production layout of
// the design: three replicas, two of which must acknowledge a write (producers use
// acks=all), so one broker can be down without blocking writes or risking acknowledged
// data.
const (
	DefaultPartitions        = 12
	DefaultReplicationFactor = 3
	DefaultMinInsyncReplicas = 2
	DefaultCommandsRetention = 7 * 24 * time.Hour
	DefaultRepliesRetention  = 24 * time.Hour
	// DefaultSagaInputsRetention is how long a saga's inputs are kept (Saga.InputsRetention).
	// It is the default of commandsRetention, for the same reason (an applied input's
	// effect is in the instance's record), but does not follow defaults.commandsRetention:
	// that setting is sized for the traffic of commands topics, and shortening it must not
	// shorten, unnoticed, how long a stopped saga runtime can be down before unapplied
	// inputs expire.
	DefaultSagaInputsRetention = 7 * 24 * time.Hour
)

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// Config is an application's topic file (kastor.yaml): the namespace, the aggregate types,
// saga types and projections, and the partitioning and durability settings of their
// topics. Load and Parse fill in defaults and validate; a Config built in code should be
// checked with Validate.
type Config struct {
	// Namespace prefixes every topic of the application (<ns>.<aggregate>.<role>), so
	// several applications, or several test runs, can share one cluster.
	Namespace string
	// Brokers is the bootstrap list from the file, used when neither the command line nor
	// KAFKA_BROKERS names one. It may be empty.
	Brokers []string
	// Defaults apply to every aggregate that does not override them.
	Defaults Settings
	// Aggregates lists the aggregate types, each with its effective settings (the defaults
	// with the aggregate's overrides applied).
	Aggregates []Aggregate
	// SchemasReplicationFactor is the replication factor of the shared _kastor.schemas
	// topic; 0 means Defaults.ReplicationFactor.
	SchemasReplicationFactor int16
	// Projections lists the application's projections (readers), so that the plan
	// creates their dead-letter topics (ProjectionDLQTopic): a reader never creates a
	// topic and refuses to start without its dead-letter topic.
	Projections []Projection
	// Sagas lists the application's saga types, each with its effective settings, so that
	// the plan creates their topics (SagaTopicName).
	Sagas []Saga
	// File is where the configuration was read from, for messages; it may be empty.
	File string
}

// Projection is a projection whose dead-letter topic the plan creates.
type Projection struct {
	// Name is the projection's name, as in consumer.Config.Name.
	Name string
	// Partitions of the dead-letter topic; 0 means DefaultDLQPartitions. Readers read the
	// whole topic when partitions are assigned (letters are located by their origin
	// headers, not by partition), so more partitions only spread a very large backlog.
	Partitions int32
	// ReplicationFactor of the dead-letter topic; 0 means Defaults.ReplicationFactor.
	ReplicationFactor int16
}

// Saga is a saga type whose topics the plan creates: inputs and state with Partitions
// partitions, the dead-letter topic with DefaultDLQPartitions.
type Saga struct {
	// Type names the saga type, as in saga.Definition.Type (bank.transfer); it is part of
	// every topic name.
	Type string
	// Partitions is the partition count of the inputs and state topics, which must be
	// equal: an instance ID maps to the same partition of both, and the runtime owning it
	// is the instance's only writer. Like an aggregate's, the count cannot change without
	// moving instances away from their records, so choose it for the peak parallelism the
	// saga will need. Parsing defaults it to Defaults.Partitions.
	Partitions int32
	// ReplicationFactor of the three topics; parsing defaults it to
	// Defaults.ReplicationFactor.
	ReplicationFactor int16
	// MinInsyncReplicas of the three topics; parsing defaults it to
	// Defaults.MinInsyncReplicas.
	MinInsyncReplicas int
	// InputsRetention is how long inputs are kept; parsing defaults it to
	// DefaultSagaInputsRetention. The runtime consumes an input and records its effect in
	// the instance's record in one transaction, so an applied input matters only for
	// debugging; the retention must still outlast any time the runtime may be down.
	InputsRetention time.Duration
}

// DefaultDLQPartitions is the partition count of a dead-letter topic: one. Letters are
// rare, every reader reads the topic in full on assignment, and one partition keeps
// them in the order they were parked.
const DefaultDLQPartitions = 1

// Settings are the per-aggregate topic settings.
type Settings struct {
	// Partitions is the partition count of all four topics of an aggregate type. A partition
	// is a shard: aggregate IDs map to partitions by the murmur2 hash of the key modulo the
	// count, and the gateway that owns partition p is its only writer. The count therefore
	// cannot change without remapping IDs to other shards, so choose it for the peak
	// parallelism the aggregate will ever need.
	Partitions int32
	// ReplicationFactor is how many brokers hold a copy of every partition.
	ReplicationFactor int16
	// MinInsyncReplicas is how many replicas must have a write before an acks=all producer
	// gets its acknowledgement; with ReplicationFactor-1 of them, one broker may fail
	// without losing acknowledged events or stopping writes.
	MinInsyncReplicas int
	// CommandsRetention is how long commands are kept. Commands are requests, not history:
	// once processed, their effect is in the events topic, so a short retention suffices.
	CommandsRetention time.Duration
	// RepliesRetention is how long command results are kept for callers to read.
	RepliesRetention time.Duration
}

// Aggregate is one aggregate type and the settings of its topics.
type Aggregate struct {
	// Type names the aggregate type (bank.account); it is part of every topic name.
	Type string
	Settings
}

// DefaultSettings returns the settings used for fields a topic file leaves out.
func DefaultSettings() Settings {
	return Settings{
		Partitions:        DefaultPartitions,
		ReplicationFactor: DefaultReplicationFactor,
		MinInsyncReplicas: DefaultMinInsyncReplicas,
		CommandsRetention: DefaultCommandsRetention,
		RepliesRetention:  DefaultRepliesRetention,
	}
}

// Load reads and validates a topic file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse reads a topic file's content. filename is used in error messages only. Decoding is
// strict: an unknown key is an error naming the key and its line.
func Parse(data []byte, filename string) (*Config, error) {
	p := parser{file: filename, fromFile: true}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: filename, Msg: "the file is empty; it needs at least a namespace and one aggregate"}
		}
		return nil, p.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ConfigError{File: filename, Line: extra.Line, Msg: "a second YAML document (---) is not allowed; put everything in one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, p.yamlErr(err)
	}
	cfg := p.build(&raw)
	if len(p.errs) == 0 {
		cfg.validate(&p)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return cfg, nil
}

// Validate checks a Config built in code by the same rules Parse applies.
func (c *Config) Validate() error {
	p := parser{file: c.File}
	c.validate(&p)
	return errors.Join(p.errs...)
}

// The raw* types mirror the YAML. Scalars are kept as nodes so that every value can be
// checked, and reported, with its line.
type rawConfig struct {
	Namespace   node            `yaml:"namespace"`
	Brokers     []node          `yaml:"brokers"`
	Defaults    *rawSettings    `yaml:"defaults"`
	Aggregates  []rawAggregate  `yaml:"aggregates"`
	Schemas     *rawSchemas     `yaml:"schemas"`
	Projections []rawProjection `yaml:"projections"`
	Sagas       []rawSaga       `yaml:"sagas"`
}

type rawSaga struct {
	Type              node `yaml:"type"`
	Partitions        node `yaml:"partitions"`
	ReplicationFactor node `yaml:"replicationFactor"`
	MinInsyncReplicas node `yaml:"minInsyncReplicas"`
	InputsRetention   node `yaml:"inputsRetention"`
}

type rawProjection struct {
	Name              node `yaml:"name"`
	Partitions        node `yaml:"partitions"`
	ReplicationFactor node `yaml:"replicationFactor"`
}

type rawSettings struct {
	Partitions        node `yaml:"partitions"`
	ReplicationFactor node `yaml:"replicationFactor"`
	MinInsyncReplicas node `yaml:"minInsyncReplicas"`
	CommandsRetention node `yaml:"commandsRetention"`
	RepliesRetention  node `yaml:"repliesRetention"`
}

type rawAggregate struct {
	Type        node `yaml:"type"`
	rawSettings `yaml:",inline"`
}

type rawSchemas struct {
	ReplicationFactor node `yaml:"replicationFactor"`
}

// node keeps a YAML value as it was written.
type node struct{ n *yaml.Node }

// UnmarshalYAML keeps the node, so its value is checked later with its line at hand.
func (x *node) UnmarshalYAML(n *yaml.Node) error {
	x.n = n
	return nil
}

func (x node) set() bool { return x.n != nil && x.n.Tag != "!!null" }

func (x node) line() int {
	if x.n == nil {
		return 0
	}
	return x.n.Line
}

type parser struct {
	file     string
	fromFile bool // validation of a parsed file: lines tell which fields were written
	errs     []error
	lines    map[string]int // field path -> line, for validation messages
}

func (p *parser) fail(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) remember(field string, x node) {
	if x.set() {
		if p.lines == nil {
			p.lines = map[string]int{}
		}
		p.lines[field] = x.line()
	}
}

func (p *parser) lineOf(field string) int { return p.lines[field] }

var (
	yamlLineErr   = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlSyntaxErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlUnknown   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	yamlCannot    = regexp.MustCompile(`^cannot unmarshal (\S+) (.*) into (\S+)$`)
)

// yamlErr turns yaml.v3's errors into ConfigErrors that name the file, line and key, and
// speak of YAML keys rather than Go types.
func (p *parser) yamlErr(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, msg := range te.Errors {
			ce := &ConfigError{File: p.file, Msg: msg}
			if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
				ce.Line, _ = strconv.Atoi(m[1])
				ce.Msg = m[2]
				if u := yamlUnknown.FindStringSubmatch(m[2]); u != nil {
					section, known := describeType(u[2])
					ce.Msg = fmt.Sprintf("unknown key %q %s (known keys: %s)", u[1], section, strings.Join(known, ", "))
				} else if c := yamlCannot.FindStringSubmatch(m[2]); c != nil {
					ce.Msg = fmt.Sprintf("want %s, got %s %s", expectedFor(c[3]), kindName(c[1]), c[2])
				}
			}
			errs = append(errs, ce)
		}
		return errors.Join(errs...)
	}
	if m := yamlSyntaxErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: p.file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &ConfigError{File: p.file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// expectedFor says what YAML a raw type wants, for "cannot unmarshal" errors.
func expectedFor(goType string) string {
	switch goType {
	case "topics.rawConfig":
		return "a mapping with namespace, aggregates and optional brokers, defaults, schemas, projections, sagas"
	case "topics.rawProjection":
		return "a mapping with a name and optional partitions, replicationFactor"
	case "[]topics.rawProjection":
		return "a list of projections (- name: balances)"
	case "topics.rawSaga":
		return "a mapping with a type and optional " + strings.Join(yamlKeys(reflect.TypeOf(rawSaga{}))[1:], ", ")
	case "[]topics.rawSaga":
		return "a list of sagas (- type: bank.transfer)"
	case "topics.rawSettings":
		return "a mapping of settings (" + strings.Join(yamlKeys(reflect.TypeOf(rawSettings{})), ", ") + ")"
	case "topics.rawSchemas":
		return "a mapping of settings (" + strings.Join(yamlKeys(reflect.TypeOf(rawSchemas{})), ", ") + ")"
	case "topics.rawAggregate":
		return "a mapping with a type and optional settings"
	case "[]topics.rawAggregate":
		return "a list of aggregates (- type: bank.account)"
	case "[]topics.node":
		return "a list of host:port addresses"
	}
	return goType
}

// describeType names a raw type the way a user sees it, with its keys.
func describeType(goType string) (string, []string) {
	var t reflect.Type
	var section string
	switch goType {
	case "topics.rawConfig":
		t, section = reflect.TypeOf(rawConfig{}), "at the top level"
	case "topics.rawSettings":
		t, section = reflect.TypeOf(rawSettings{}), "in defaults"
	case "topics.rawAggregate":
		t, section = reflect.TypeOf(rawAggregate{}), "in an aggregate"
	case "topics.rawSchemas":
		t, section = reflect.TypeOf(rawSchemas{}), "in schemas"
	case "topics.rawProjection":
		t, section = reflect.TypeOf(rawProjection{}), "in a projection"
	case "topics.rawSaga":
		t, section = reflect.TypeOf(rawSaga{}), "in a saga"
	default:
		return goType, nil
	}
	return section, yamlKeys(t)
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == ",inline" {
			keys = append(keys, yamlKeys(f.Type)...)
			continue
		}
		keys = append(keys, strings.Split(tag, ",")[0])
	}
	return keys
}

func kindName(tag string) string {
	switch tag {
	case "!!str":
		return "the string"
	case "!!int", "!!float":
		return "the number"
	case "!!bool":
		return "the boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	}
	return tag
}

// build converts the raw file into a Config with defaults applied, recording type errors.
func (p *parser) build(raw *rawConfig) *Config {
	cfg := &Config{File: p.file, Defaults: DefaultSettings()}
	cfg.Namespace = p.str("namespace", raw.Namespace)
	for i, b := range raw.Brokers {
		field := fmt.Sprintf("brokers[%d]", i)
		addr := p.str(field, b)
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			p.fail(b.line(), field, "want host:port, got %q", addr)
			continue
		}
		cfg.Brokers = append(cfg.Brokers, addr)
	}
	if raw.Defaults != nil {
		p.settings("defaults", raw.Defaults, &cfg.Defaults)
	}
	for i := range raw.Aggregates {
		ra := &raw.Aggregates[i]
		field := fmt.Sprintf("aggregates[%d]", i)
		a := Aggregate{Settings: cfg.Defaults}
		a.Type = p.str(field+".type", ra.Type)
		p.settings(field, &ra.rawSettings, &a.Settings)
		cfg.Aggregates = append(cfg.Aggregates, a)
	}
	for i := range raw.Projections {
		rp := &raw.Projections[i]
		field := fmt.Sprintf("projections[%d]", i)
		pr := Projection{Name: p.str(field+".name", rp.Name)}
		if rp.Partitions.set() {
			if n, ok := p.int(field+".partitions", rp.Partitions, math.MaxInt32); ok {
				pr.Partitions = int32(n)
				if n < 1 {
					p.fail(rp.Partitions.line(), field+".partitions", "must be at least 1, got %d", n)
				}
			}
		}
		if rp.ReplicationFactor.set() {
			if n, ok := p.int(field+".replicationFactor", rp.ReplicationFactor, math.MaxInt16); ok {
				pr.ReplicationFactor = int16(n)
				if n < 1 {
					p.fail(rp.ReplicationFactor.line(), field+".replicationFactor", "must be at least 1, got %d", n)
				}
			}
		}
		cfg.Projections = append(cfg.Projections, pr)
	}
	for i := range raw.Sagas {
		rs := &raw.Sagas[i]
		field := fmt.Sprintf("sagas[%d]", i)
		sg := Saga{
			Type:              p.str(field+".type", rs.Type),
			Partitions:        cfg.Defaults.Partitions,
			ReplicationFactor: cfg.Defaults.ReplicationFactor,
			MinInsyncReplicas: cfg.Defaults.MinInsyncReplicas,
			InputsRetention:   DefaultSagaInputsRetention,
		}
		if v, ok := p.int(field+".partitions", rs.Partitions, math.MaxInt32); ok {
			sg.Partitions = int32(v)
		}
		if v, ok := p.int(field+".replicationFactor", rs.ReplicationFactor, math.MaxInt16); ok {
			sg.ReplicationFactor = int16(v)
		}
		if v, ok := p.int(field+".minInsyncReplicas", rs.MinInsyncReplicas, math.MaxInt16); ok {
			sg.MinInsyncReplicas = int(v)
		}
		if d, ok := p.duration(field+".inputsRetention", rs.InputsRetention); ok {
			sg.InputsRetention = d
		}
		cfg.Sagas = append(cfg.Sagas, sg)
	}
	if raw.Schemas != nil {
		if rf, ok := p.int("schemas.replicationFactor", raw.Schemas.ReplicationFactor, math.MaxInt16); ok {
			cfg.SchemasReplicationFactor = int16(rf)
		}
	}
	return cfg
}

func (p *parser) settings(prefix string, rs *rawSettings, s *Settings) {
	if v, ok := p.int(prefix+".partitions", rs.Partitions, math.MaxInt32); ok {
		s.Partitions = int32(v)
	}
	if v, ok := p.int(prefix+".replicationFactor", rs.ReplicationFactor, math.MaxInt16); ok {
		s.ReplicationFactor = int16(v)
	}
	if v, ok := p.int(prefix+".minInsyncReplicas", rs.MinInsyncReplicas, math.MaxInt16); ok {
		s.MinInsyncReplicas = int(v)
	}
	if d, ok := p.duration(prefix+".commandsRetention", rs.CommandsRetention); ok {
		s.CommandsRetention = d
	}
	if d, ok := p.duration(prefix+".repliesRetention", rs.RepliesRetention); ok {
		s.RepliesRetention = d
	}
}

func (p *parser) str(field string, x node) string {
	if !x.set() {
		return ""
	}
	p.remember(field, x)
	if x.n.Kind != yaml.ScalarNode {
		p.fail(x.line(), field, "want a string, got %s", kindName(x.n.Tag))
		return ""
	}
	return x.n.Value
}

func (p *parser) int(field string, x node, max int64) (int64, bool) {
	if !x.set() {
		return 0, false
	}
	p.remember(field, x)
	if x.n.Kind != yaml.ScalarNode || x.n.Tag != "!!int" {
		p.fail(x.line(), field, "want a whole number, got %s %q", kindName(x.n.Tag), x.n.Value)
		return 0, false
	}
	v, err := strconv.ParseInt(x.n.Value, 0, 64)
	if err != nil || v > max || v < -max {
		p.fail(x.line(), field, "%s is out of range (at most %d)", x.n.Value, max)
		return 0, false
	}
	return v, true
}

func (p *parser) duration(field string, x node) (time.Duration, bool) {
	if !x.set() {
		return 0, false
	}
	p.remember(field, x)
	if x.n.Kind != yaml.ScalarNode || x.n.Tag != "!!str" {
		p.fail(x.line(), field, "want a duration such as 168h or 7d, got %s %q (a bare number has no unit)", kindName(x.n.Tag), x.n.Value)
		return 0, false
	}
	d, err := ParseDuration(x.n.Value)
	if err != nil {
		p.fail(x.line(), field, "%v", err)
		return 0, false
	}
	return d, true
}

// ParseDuration parses a Go duration ("168h", "90m") that may start with a number of days
// ("7d", "1d12h"), the unit retention is usually thought in.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("invalid duration %q: want a number of days before \"d\", as in 7d or 1d12h", orig)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		rest, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a duration such as 168h, 30m or 7d", orig)
		}
		if days > 0 && rest < 0 {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
	}
	total := time.Duration(days)*24*time.Hour + rest
	if total < rest {
		return 0, fmt.Errorf("invalid duration %q: too long", orig)
	}
	return total, nil
}

// FormatDuration is the inverse of ParseDuration for display: whole days as "7d".
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

var (
	aggregateTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	namespaceRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

func (c *Config) validate(p *parser) {
	switch {
	case c.Namespace == "":
		p.fail(0, "namespace", "required: it prefixes every topic name (<namespace>.<aggregate>.<role>)")
	case !namespaceRE.MatchString(c.Namespace):
		p.fail(p.lineOf("namespace"), "namespace", "%q is not a valid namespace: use letters, digits, '.', '_' and '-', starting with a letter or digit", c.Namespace)
	}
	c.validateSettings(p, "defaults", c.Defaults, true)
	if len(c.Aggregates) == 0 {
		p.fail(0, "aggregates", "at least one aggregate type is required")
	}
	seen := map[string]string{} // normalized topic name -> field that claimed it
	for i, a := range c.Aggregates {
		field := fmt.Sprintf("aggregates[%d]", i)
		switch {
		case a.Type == "":
			p.fail(p.lineOf(field+".type"), field+".type", "required: the aggregate type, such as bank.account")
			continue
		case !aggregateTypeRE.MatchString(a.Type):
			p.fail(p.lineOf(field+".type"), field+".type", "%q is not a valid aggregate type: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit ([a-z0-9][a-z0-9._-]*)", a.Type)
			continue
		}
		c.validateSettings(p, field, a.Settings, false)
		for _, role := range aggregateRoles {
			name := TopicName(c.Namespace, a.Type, role)
			if len(name) > MaxTopicNameLength {
				p.fail(p.lineOf(field+".type"), field+".type", "topic name %q is %d characters; Kafka allows at most %d", name, len(name), MaxTopicNameLength)
				break
			}
			// Kafka refuses two topics whose names differ only in '.' versus '_', because
			// both become the same metric name.
			norm := strings.ReplaceAll(name, ".", "_")
			if prev, ok := seen[norm]; ok {
				if c.Aggregates[indexOf(prev)].Type == a.Type {
					p.fail(p.lineOf(field+".type"), field+".type", "duplicate aggregate type %q (also %s)", a.Type, prev)
				} else {
					p.fail(p.lineOf(field+".type"), field+".type", "aggregate type %q collides with %q of %s: Kafka treats '.' and '_' in topic names as the same", a.Type, c.Aggregates[indexOf(prev)].Type, prev)
				}
				break
			}
			seen[norm] = field
		}
	}
	names := map[string]string{}
	for i, pr := range c.Projections {
		field := fmt.Sprintf("projections[%d]", i)
		switch {
		case pr.Name == "":
			p.fail(p.lineOf(field+".name"), field+".name", "required: the projection's name, as in consumer.Config.Name")
			continue
		case !projectionNameRE.MatchString(pr.Name):
			p.fail(p.lineOf(field+".name"), field+".name", "%q is not a valid projection name: use letters, digits, '.', '_' and '-'", pr.Name)
			continue
		case len(ProjectionDLQTopic(c.Namespace, pr.Name)) > MaxTopicNameLength:
			p.fail(p.lineOf(field+".name"), field+".name", "topic name %q is longer than %d characters", ProjectionDLQTopic(c.Namespace, pr.Name), MaxTopicNameLength)
			continue
		}
		norm := strings.ReplaceAll(pr.Name, ".", "_")
		if prev, ok := names[norm]; ok {
			p.fail(p.lineOf(field+".name"), field+".name", "projection %q collides with %s (duplicate, or differs only in '.' versus '_')", pr.Name, prev)
		}
		names[norm] = field
		if pr.Partitions < 0 || pr.ReplicationFactor < 0 {
			p.fail(p.lineOf(field+".name"), field, "partitions and replicationFactor must be at least 1")
		}
	}
	c.validateSagas(p)
	if rf := c.SchemasReplicationFactor; rf < 0 || (rf == 0 && p.lineOf("schemas.replicationFactor") > 0) {
		p.fail(p.lineOf("schemas.replicationFactor"), "schemas.replicationFactor", "must be at least 1, got %d", rf)
	}
}

var projectionNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func indexOf(field string) int {
	i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(field, "aggregates["), "]"))
	return i
}

// validateSagas checks the sagas section. A saga's topic names cannot collide with an
// aggregate's or a projection's: they end in another role, or have "saga" where a
// projection's have "proj". So only sagas are compared with each other.
func (c *Config) validateSagas(p *parser) {
	seen := map[string]int{} // type with '.' as '_' -> index of the saga that claimed it
	for i, sg := range c.Sagas {
		field := fmt.Sprintf("sagas[%d]", i)
		typeField := field + ".type"
		line := p.lineOf(typeField)
		switch {
		case sg.Type == "":
			p.fail(line, typeField, "required: the saga type, as in saga.Definition.Type, such as bank.transfer")
			continue
		case !aggregateTypeRE.MatchString(sg.Type):
			p.fail(line, typeField, "%q is not a valid saga type: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit ([a-z0-9][a-z0-9._-]*)", sg.Type)
			continue
		}
		own := func(key string) bool { return p.lineOf(field+"."+key) > 0 || !p.fromFile }
		validateLayout(p, field, sg.Partitions, sg.ReplicationFactor, sg.MinInsyncReplicas, own, false)
		if own("inputsRetention") && sg.InputsRetention < time.Millisecond {
			p.fail(p.lineOf(field+".inputsRetention"), field+".inputsRetention", "must be at least 1ms, got %s", sg.InputsRetention)
		}
		tooLong := false
		for _, role := range sagaRoles {
			if name := SagaTopicName(c.Namespace, sg.Type, role); len(name) > MaxTopicNameLength {
				p.fail(line, typeField, "topic name %q is %d characters; Kafka allows at most %d", name, len(name), MaxTopicNameLength)
				tooLong = true
				break
			}
		}
		if tooLong {
			continue
		}
		// Kafka refuses two topics whose names differ only in '.' versus '_'.
		norm := strings.ReplaceAll(sg.Type, ".", "_")
		j, dup := seen[norm]
		if !dup {
			seen[norm] = i
			continue
		}
		prev := fmt.Sprintf("sagas[%d]", j)
		if l := p.lineOf(prev + ".type"); l > 0 {
			prev += fmt.Sprintf(", line %d", l)
		}
		if c.Sagas[j].Type == sg.Type {
			p.fail(line, typeField, "duplicate saga type %q (also %s)", sg.Type, prev)
		} else {
			p.fail(line, typeField, "saga type %q collides with %q (%s): Kafka treats '.' and '_' in topic names as the same", sg.Type, c.Sagas[j].Type, prev)
		}
	}
}

func (c *Config) validateSettings(p *parser, prefix string, s Settings, isDefaults bool) {
	// Report a bad default once, at the defaults, not again for every aggregate that
	// inherits it.
	own := func(key string) bool { return isDefaults || p.lineOf(prefix+"."+key) > 0 || !p.fromFile }
	validateLayout(p, prefix, s.Partitions, s.ReplicationFactor, s.MinInsyncReplicas, own, isDefaults)
	if own("commandsRetention") && s.CommandsRetention < time.Millisecond {
		p.fail(p.lineOf(prefix+".commandsRetention"), prefix+".commandsRetention", "must be at least 1ms, got %s", s.CommandsRetention)
	}
	if own("repliesRetention") && s.RepliesRetention < time.Millisecond {
		p.fail(p.lineOf(prefix+".repliesRetention"), prefix+".repliesRetention", "must be at least 1ms, got %s", s.RepliesRetention)
	}
}

// validateLayout checks the partition count, replication factor and min.insync.replicas
// of the section at prefix (defaults, an aggregate, a saga); own tells whether the section
// set a key itself, so that a bad default is reported once, at the defaults.
func validateLayout(p *parser, prefix string, partitions int32, rf int16, minISR int, own func(key string) bool, isDefaults bool) {
	if own("partitions") && partitions < 1 {
		p.fail(p.lineOf(prefix+".partitions"), prefix+".partitions", "must be at least 1, got %d", partitions)
	}
	if own("replicationFactor") && rf < 1 {
		p.fail(p.lineOf(prefix+".replicationFactor"), prefix+".replicationFactor", "must be at least 1, got %d", rf)
	}
	if own("minInsyncReplicas") && minISR < 1 {
		p.fail(p.lineOf(prefix+".minInsyncReplicas"), prefix+".minInsyncReplicas", "must be at least 1, got %d", minISR)
	}
	if (own("minInsyncReplicas") || own("replicationFactor")) && rf >= 1 && minISR > int(rf) {
		field := prefix + ".minInsyncReplicas"
		line := p.lineOf(field)
		what := fmt.Sprintf("%d", minISR)
		if line == 0 {
			if isDefaults || p.lineOf("defaults.minInsyncReplicas") == 0 {
				what += " (the default)"
			} else {
				what += " (from defaults)"
			}
			line = p.lineOf(prefix + ".replicationFactor")
		}
		p.fail(line, field, "%s exceeds replicationFactor %d: acks=all writes could never succeed; set minInsyncReplicas to at most %d (1 for a one-broker cluster)", what, rf, rf)
	}
}
