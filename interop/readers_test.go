package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A reader is one recipe, built and ready to run: argv before the brokers and topic.
type reader struct {
	name string
	argv []string
	// prepared is how long the build or install took (0: reused from the cache).
	prepared time.Duration
}

// requireTools skips the test when a tool the recipes need is missing, or fails it when
// CI or KASTOR_REQUIRE_DOCKER is set: a CI run must not pass by skipping them.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"java", "mvn", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("interop: %s not on PATH: the wire-format recipes need Java 17 with Maven (interop/java) "+
		"and Python 3 with venv and pip (interop/python)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" || os.Getenv("KASTOR_REQUIRE_DOCKER") != "" {
		t.Fatal(msg + "; CI or KASTOR_REQUIRE_DOCKER is set, so this is a failure, not a skip")
	}
	t.Skip(msg + "; skipped (set CI or KASTOR_REQUIRE_DOCKER to make it a failure)")
}

// cacheRoot is where the built recipes are kept between runs: outside the work tree, so
// that CI's fresh clones reuse them (KASTOR_INTEROP_CACHE, else the user's cache directory).
func cacheRoot() (string, error) {
	dir := os.Getenv("KASTOR_INTEROP_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir() // no home: cached for this boot at most
		}
		dir = filepath.Join(base, "kastor", "interop")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// treeHash hashes the files under dir (paths and contents), skipping build output.
func treeHash(dir string, extra ...string) (string, error) {
	h := sha256.New()
	for _, e := range extra {
		fmt.Fprintf(h, "%s\n", e)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "target" || d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(path), len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16], err
}

// run runs a command in dir and returns its combined output with the error.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// publish moves a finished build from tmp to dir; a concurrent run that got there first
// wins, and tmp is removed.
func publish(tmp, dir string) error {
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return os.RemoveAll(tmp)
		}
		return err
	}
	return nil
}

// javaReader builds interop/java (offline first, then from Maven Central) unless a build
// of the same sources is in the cache: the jar and its runtime dependencies in lib/.
func javaReader(ctx context.Context) (reader, error) {
	r := reader{name: "java"}
	root, err := cacheRoot()
	if err != nil {
		return r, err
	}
	sum, err := treeHash("java")
	if err != nil {
		return r, err
	}
	dir := filepath.Join(root, "java-"+sum)
	jar, lib := filepath.Join(dir, "interop-reader.jar"), filepath.Join(dir, "lib")
	r.argv = []string{"java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", jar + string(os.PathListSeparator) + filepath.Join(lib, "*"), "dev.kastor.interop.ReadEvents"}
	if _, err := os.Stat(lib); err == nil {
		if _, err := os.Stat(jar); err == nil {
			return r, nil // a build is published whole (publish), so both are complete
		}
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(root, "java-build-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(tmp)
	for _, offline := range []bool{true, false} {
		args := []string{"-q", "-B", "package", "-Dinterop.build.dir=" + tmp}
		if offline {
			args = append([]string{"-o"}, args...)
		}
		if _, err = run(ctx, "java", "mvn", args...); err == nil {
			break
		}
	}
	if err != nil {
		return r, fmt.Errorf("building the Java recipe: %w", err)
	}
	r.prepared = time.Since(start)
	return r, publish(tmp, dir)
}

// pythonReader makes a virtual environment with python/requirements.txt installed from
// PyPI unless one made from the same requirements and interpreter is in the cache.
func pythonReader(ctx context.Context) (reader, error) {
	r := reader{name: "python"}
	root, err := cacheRoot()
	if err != nil {
		return r, err
	}
	ver, err := run(ctx, ".", "python3", "-c", "import sys; print(sys.executable, sys.version)")
	if err != nil {
		return r, err
	}
	req, err := os.ReadFile(filepath.Join("python", "requirements.txt"))
	if err != nil {
		return r, err
	}
	h := sha256.Sum256(append(ver, req...))
	dir := filepath.Join(root, "python-"+hex.EncodeToString(h[:8]))
	script, err := filepath.Abs(filepath.Join("python", "read_events.py"))
	if err != nil {
		return r, err
	}
	py := filepath.Join(dir, "bin", "python")
	r.argv = []string{py, script}
	check := []string{"-c", "import confluent_kafka, fastavro"}
	if _, err := run(ctx, ".", py, check...); err == nil {
		return r, nil
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(root, "python-venv-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, ".", "python3", "-m", "venv", tmp); err != nil {
		return r, fmt.Errorf("making a Python virtual environment (Debian: apt-get install python3-venv): %w", err)
	}
	if _, err := run(ctx, ".", filepath.Join(tmp, "bin", "python"), "-m", "pip", "install", "-q",
		"--disable-pip-version-check", "-r", filepath.Join("python", "requirements.txt")); err != nil {
		return r, fmt.Errorf("installing the Python recipe's packages: %w", err)
	}
	os.RemoveAll(dir) // a broken environment of the same inputs
	if err := publish(tmp, dir); err != nil {
		return r, err
	}
	r.prepared = time.Since(start)
	if _, err := run(ctx, ".", py, check...); err != nil {
		return r, fmt.Errorf("the Python environment does not work once moved: %w", err)
	}
	return r, nil
}

// output runs a reader on the events topic and returns what it printed on stdout.
func (r reader) output(ctx context.Context, brokers, topic string) (string, error) {
	args := append(append([]string(nil), r.argv[1:]...), brokers, topic)
	cmd := exec.CommandContext(ctx, r.argv[0], args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out: %w", ctx.Err())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s reader: %w\nstdout:\n%s\nstderr:\n%s", r.name, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}
