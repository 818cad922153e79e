// Package image tests the container image `make image` builds without running a container:
// it builds the image with buildah, checks its configuration and what its root filesystem
// holds, then runs its entrypoint from that filesystem (chroot, as the image's user, with only
// the image's environment and the backends' addresses) against the real backends.
package image_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hexapost/test/harness"
)

// root is the repository, two directories up from test/image.
const root = "../.."

// ociConfig is the part of an image's OCI configuration the test reads.
type ociConfig struct {
	User         string
	Env          []string
	Entrypoint   []string
	Cmd          []string
	ExposedPorts map[string]struct{}
	Labels       map[string]string
}

func TestImageRunsFromItsRootFilesystem(t *testing.T) {
	t.Parallel()
	// The backends first: without them the test skips before it builds anything.
	env := []string{
		"POSTS_EVENT_STORE=mysql", "POSTS_MYSQL_DSN=" + harness.MySQLDatabase(t, "hexapost_image_"),
		"POSTS_READ_MODEL=mongo", "POSTS_MONGO_URI=" + harness.MongoDatabase(t, "", "hexapost_image_"),
	}
	_, natsURL := harness.StartNATS(t, 10*time.Second)
	env = append(env, "POSTS_BUS=nats", "POSTS_NATS_URL="+natsURL)
	if _, err := exec.LookPath("buildah"); err != nil {
		unavailable(t, "buildah is not installed (test/backends/up.sh installs it)")
	}
	if os.Geteuid() != 0 {
		unavailable(t, "building with buildah and running the image's entrypoint with chroot need root")
	}

	image := "localhost/hexapost-image-test:" + harness.RandomHex(4)
	begin := time.Now()
	run(t, "make", "-C", root, "--no-print-directory", "image", "IMAGE="+image, "IMAGE_ENGINE=buildah")
	t.Cleanup(func() { _, _ = exec.Command("buildah", "rmi", "-f", image).CombinedOutput() })
	t.Logf("make image took %s; the image weighs %s", time.Since(begin).Round(time.Second),
		strings.TrimSpace(run(t, "buildah", "images", "--format", "{{.Size}}", image)))

	var inspected struct {
		OCIv1 struct {
			Config ociConfig `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(run(t, "buildah", "inspect", "--type", "image", image)), &inspected); err != nil {
		t.Fatal(err)
	}
	cfg := inspected.OCIv1.Config
	checkConfig(t, cfg)

	ctr := strings.TrimSpace(run(t, "buildah", "from", "--pull=never", image))
	t.Cleanup(func() { _, _ = exec.Command("buildah", "rm", ctr).CombinedOutput() })
	rootfs := strings.TrimSpace(run(t, "buildah", "mount", ctr))
	t.Cleanup(func() { _, _ = exec.Command("buildah", "umount", ctr).CombinedOutput() })
	checkRootFilesystem(t, rootfs, cfg)

	commandPort, queryPort := harness.FreePort(t), harness.FreePort(t)
	env = append(env, "POSTS_COMMAND_ADDR=127.0.0.1:"+strconv.Itoa(commandPort),
		"POSTS_QUERY_ADDR=127.0.0.1:"+strconv.Itoa(queryPort), "POSTS_LOG_FORMAT=json")
	args := append([]string{"--userspec=" + cfg.User, rootfs}, cfg.Entrypoint...)
	proc := exec.Command("chroot", append(args, cfg.Cmd...)...)
	// Only the image's environment and the backends': nothing of the test's own.
	proc.Env = append(slices.Clone(cfg.Env), env...)
	// The process's output goes to a file, read back for failure messages.
	logPath := filepath.Join(t.TempDir(), "hexapost.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logs.Close() }()
	output := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	proc.Stdout, proc.Stderr = logs, logs
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = proc.Wait(); close(exited) }()
	t.Cleanup(func() { _ = proc.Process.Kill(); <-exited })

	commandURL := "http://127.0.0.1:" + strconv.Itoa(commandPort)
	queryURL := "http://127.0.0.1:" + strconv.Itoa(queryPort)
	harness.Eventually(t, 30*time.Second, 100*time.Millisecond, "both servers ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("the image's entrypoint exited; its output:\n%s", output())
		default:
		}
		for _, u := range []string{commandURL, queryURL} {
			if r, err := harness.Send("GET", u+"/readyz", nil); err != nil || r.Status != 200 {
				return false
			}
		}
		return true
	})
	if user := processUser(t, proc.Process.Pid); user != cfg.User {
		t.Errorf("the process runs as %s, want the image's user %s", user, cfg.User)
	}

	created := harness.Do(t, "POST", commandURL+"/posts",
		map[string]string{"title": "From the image", "content": "Nothing but the binary.", "author_name": "ops"}).Must(t, 201)
	id := created.Str("id")
	harness.Do(t, "GET", queryURL+"/posts/"+id+"?min_version=1", nil).Must(t, 200)
	updated := harness.Do(t, "PATCH", commandURL+"/posts/"+id, map[string]string{"title": "Read back"}).Must(t, 200)
	read := harness.Do(t, "GET", queryURL+"/posts/"+id+"?min_version="+strconv.FormatInt(updated.Num("version"), 10), nil).Must(t, 200)
	if read.Str("title") != "Read back" || read.Num("version") != 2 {
		t.Errorf("read your write: got %s", read.Raw)
	}
	// The API docs are served from the binary, with nothing fetched.
	harness.Do(t, "GET", commandURL+"/docs", nil).Must(t, 200)

	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if code := proc.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM; output:\n%s", code, output())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("no exit within 20s of SIGTERM; output:\n%s", output())
	}
}

// checkConfig checks what the image says about itself: a numeric non-root user, both ports,
// an entrypoint, and the OCI labels with the revision it was built from.
func checkConfig(t *testing.T, cfg ociConfig) {
	t.Helper()
	uid, gid, ok := strings.Cut(cfg.User, ":")
	if n, err := strconv.Atoi(uid); !ok || err != nil || n == 0 {
		t.Errorf("user %q: want a numeric uid:gid other than root", cfg.User)
	}
	if n, err := strconv.Atoi(gid); err != nil || n == 0 {
		t.Errorf("user %q: want a numeric group other than root", cfg.User)
	}
	for _, p := range []string{"3000/tcp", "4000/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("port %s is not exposed: %v", p, cfg.ExposedPorts)
		}
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/hexapost"}) {
		t.Errorf("entrypoint %q, want the binary", cfg.Entrypoint)
	}
	head := strings.TrimSpace(run(t, "git", "-C", root, "rev-parse", "HEAD"))
	if got := cfg.Labels["org.opencontainers.image.revision"]; got != head {
		t.Errorf("revision label %q, want %q", got, head)
	}
	if cfg.Labels["org.opencontainers.image.version"] == "" {
		t.Error("no version label")
	}
	if _, ok := cfg.Labels["org.opencontainers.image.source"]; !ok {
		t.Error("no source label")
	}
}

// checkRootFilesystem checks that the image holds the static binary and the CA certificates
// and nothing else, and that its user cannot change them.
func checkRootFilesystem(t *testing.T, rootfs string, cfg ociConfig) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(rootfs, path)
		files = append(files, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		if st == nil || st.Uid != 0 || info.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s (%s): want owned by root and writable by nobody else", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"etc/ssl/certs/ca-certificates.crt", "hexapost"}; !slices.Equal(files, want) {
		t.Errorf("the image holds %q, want only %q", files, want)
	}

	bin, err := elf.Open(filepath.Join(rootfs, cfg.Entrypoint[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bin.Close() }()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is not static: it has a %s program header", p.Type)
		}
	}
}

// processUser returns the real user and group ids of a running process as uid:gid, and fails
// the test if root's group is among its supplementary groups.
func processUser(t *testing.T, pid int) string {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string][]string{}
	for line := range strings.Lines(string(status)) {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "Uid" || k == "Gid" || k == "Groups") {
			ids[k] = strings.Fields(v)
		}
	}
	if slices.Contains(ids["Groups"], "0") {
		t.Errorf("the process is in root's group: groups %q", ids["Groups"])
	}
	if len(ids["Uid"]) == 0 || len(ids["Gid"]) == 0 {
		t.Fatalf("no Uid or Gid in /proc/%d/status", pid)
	}
	return ids["Uid"][0] + ":" + ids["Gid"][0]
}

// run runs a command to its end and returns its standard output; a failure fails the test with
// everything it printed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// unavailable skips the test for a missing tool, except under CI=true, where CI could otherwise
// go green without ever checking the image.
func unavailable(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason + " (CI=true: the image test must run)")
	}
	t.Skip(reason)
}
