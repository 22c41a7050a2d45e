package pgtest

import "time"

// OfficialImage is the image used when POSTGRES_IMAGE is not set and it is available.
const OfficialImage = "postgres:16"

// LocalImage is the image docker/build-postgres-image.sh builds offline from Debian's
// PostgreSQL packages.
const LocalImage = "kastor/postgres:15"

type config struct {
	image        string
	settings     []string
	startTimeout time.Duration
}

// Option configures a server started by Start, New or NewShared.
type Option func(*config)

// Image overrides POSTGRES_IMAGE and the default image.
func Image(image string) Option { return func(c *config) { c.image = image } }

// Setting sets a server parameter of a started container, as `postgres -c name=value`, such
// as Setting("max_connections", "200"). It does not apply to a server named by POSTGRES_DSN.
func Setting(name, value string) Option {
	return func(c *config) { c.settings = append(c.settings, "-c", name+"="+value) }
}

// StartTimeout bounds how long the server may take to accept a login (default 2 minutes),
// image pulls excluded.
func StartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

func newConfig(opts []Option) config {
	c := config{startTimeout: 2 * time.Minute}
	for _, o := range opts {
		o(&c)
	}
	return c
}
