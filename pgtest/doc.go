// Package pgtest gives tests a PostgreSQL server to talk to: real PostgreSQL in a Docker
// container (started with testcontainers-go), or an existing server.
//
// Start picks the backend from the environment:
//
//   - POSTGRES_DSN=postgres://user:password@host:port/db uses that server and starts nothing;
//     the user must be allowed to create databases;
//   - otherwise it starts PostgreSQL in Docker. The image is POSTGRES_IMAGE, by default the
//     official image OfficialImage, or the image built offline by
//     docker/build-postgres-image.sh (LocalImage) when only that one is present. Any image
//     that honours the official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB
//     contract works.
//
// The container's port is published on 127.0.0.1 only, and the DSN names 127.0.0.1, never
// the address testcontainers guesses for the Docker host (see decision 9). The server is
// ready when a client has logged in over TCP there, not when a log line appears.
//
// When no Docker engine can be reached, Start skips the test with a message that says how to
// run it, unless CI or KASTOR_REQUIRE_DOCKER is set: then the test fails, so a CI run can
// never pass by skipping its integration tests. These are the rules of package kafkatest.
//
// Tests share a server, not data: NewDatabase creates a database of the test's own, dropped
// when the test ends. One container per package is enough; create it with NewShared:
//
//	var postgres = pgtest.NewShared()
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		postgres.Close()
//		os.Exit(code)
//	}
//
//	func TestSink(t *testing.T) {
//		dsn := postgres.Get(t).NewDatabase(t) // a fresh, empty database
//		pool := pgtest.Connect(t, dsn)        // closed when the test ends
//		if _, err := pool.Exec(context.Background(), "CREATE TABLE events (id bigint)"); err != nil {
//			t.Fatal(err)
//		}
//		...
//	}
//
// A test that needs a server of its own (to stop it, say) calls Start(t) instead; the
// container is removed when the test ends. Containers carry the label dev.kastor.kafkatest,
// so `make clean-containers` removes those a killed test run left behind.
package pgtest
