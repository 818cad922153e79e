package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	gomongo "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// reconcileStack starts a command server on MySQL and Redis and returns the env that a query
// server and `hexapost verify` of the same deployment need (MongoDB read model).
func reconcileStack(t *testing.T) (command *process, env map[string]string) {
	t.Helper()
	env = map[string]string{
		"POSTS_EVENT_STORE": "mysql", "POSTS_MYSQL_DSN": mysqlDatabase(t),
		"POSTS_BUS": "redis", "POSTS_REDIS_URL": startPrivateRedis(t).URL(),
		"POSTS_READ_MODEL": "mongo", "POSTS_MONGO_URI": mongoDatabase(t),
	}
	return start(t, env, "serve", "command"), env
}

// withEnv returns env with more settings.
func withEnv(env map[string]string, more ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(more); i += 2 {
		out[more[i]] = more[i+1]
	}
	return out
}

// createPosts creates n posts, updates the first one twice, waits until the query server
// shows each at its version, and returns their ids.
func createPosts(t *testing.T, commandURL, queryURL string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = do(t, "POST", commandURL+"/posts", map[string]string{
			"title": fmt.Sprintf("post %d", i), "content": "v1", "author_name": "drift",
		}).Must(t, http.StatusCreated).Str("id")
	}
	for v := range 2 {
		do(t, "PATCH", commandURL+"/posts/"+ids[0], map[string]string{"content": fmt.Sprint("v", v+2)}).
			Must(t, http.StatusOK)
	}
	for i, id := range ids {
		want := 1
		if i == 0 {
			want = 3
		}
		do(t, "GET", fmt.Sprintf("%s/posts/%s?min_version=%d", queryURL, id, want), nil).Must(t, http.StatusOK)
	}
	return ids
}

// readModel is the MongoDB read model of a test, edited by hand as an operator might.
type readModel struct{ db *gomongo.Database }

func openReadModel(t *testing.T, uri string) readModel {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	client, err := gomongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(t.Context()) })
	return readModel{client.Database(strings.TrimPrefix(u.Path, "/"))}
}

// removeView deletes a post's current view.
func (m readModel) removeView(t *testing.T, id string) {
	t.Helper()
	r, err := m.db.Collection("posts").DeleteOne(t.Context(), bson.D{{Key: "_id", Value: id}})
	if err != nil || r.DeletedCount != 1 {
		t.Fatalf("delete the view of %s: %v, %+v", id, err, r)
	}
}

// removeHistory deletes the history entry of one version of a post.
func (m readModel) removeHistory(t *testing.T, id string, version int) {
	t.Helper()
	r, err := m.db.Collection("history").DeleteOne(t.Context(),
		bson.D{{Key: "post_id", Value: id}, {Key: "version", Value: version}})
	if err != nil || r.DeletedCount != 1 {
		t.Fatalf("delete the history entry %s v%d: %v, %+v", id, version, err, r)
	}
}

// verify runs `hexapost verify` with args and returns its exit code and output.
func verify(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"verify"}, args...)...)
	cmd.Env = cmd.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String() + stderr.String()
	}
	t.Fatalf("verify: %v", err)
	return 0, ""
}

// TestVerifyFindsAndRepairsDrift removes a view and a history entry from the MongoDB read model
// by hand: `hexapost verify` names both posts and exits 1, `--repair` exits 0, and so does
// verify after it, while the servers keep running.
func TestVerifyFindsAndRepairsDrift(t *testing.T) {
	t.Parallel()
	command, env := reconcileStack(t)
	// The query server does not reconcile here, so the drift stays for verify to find.
	query := start(t, withEnv(env, "POSTS_RECONCILE_INTERVAL", "off"), "serve", "query")
	ids := createPosts(t, command.CommandURL, query.QueryURL, 3)
	rm := openReadModel(t, env["POSTS_MONGO_URI"])
	rm.removeView(t, ids[1])
	rm.removeHistory(t, ids[0], 2)
	env = withEnv(env, "POSTS_RECONCILE_GRACE", "200ms")

	code, out := verify(t, env)

	wantLines := []string{
		"post " + ids[0] + ": read model version 3, store version 3, missing history versions 2 (history_missing)",
		"post " + ids[1] + ": read model version none, store version 1, missing history versions none (view_missing)",
		"2 of 3 posts differ from the event store",
	}
	for _, want := range wantLines {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	if code != 1 || strings.Contains(out, ids[2]) {
		t.Fatalf("verify exited %d, want 1, naming only the drifted posts:\n%s", code, out)
	}

	if code, out := verify(t, env, "--repair"); code != 0 {
		t.Fatalf("verify --repair exited %d, want 0:\n%s", code, out)
	}
	if code, out := verify(t, env); code != 0 || !strings.Contains(out, "matches the event store: 3 posts") {
		t.Fatalf("verify after the repair exited %d, want 0:\n%s", code, out)
	}
	do(t, "GET", query.QueryURL+"/posts/"+ids[1], nil).Must(t, http.StatusOK)
	if h := do(t, "GET", query.QueryURL+"/posts/"+ids[0]+"/history", nil).Must(t, http.StatusOK).Items(); len(h) != 3 {
		t.Errorf("%d history entries after the repair, want 3", len(h))
	}
}

// TestQueryServersRepairDriftOnce runs two query servers on one read model, reconciling every
// second: drift made by hand is repaired by itself, and the two count each drifted post once
// between them, because only one of them reconciles.
func TestQueryServersRepairDriftOnce(t *testing.T) {
	t.Parallel()
	command, env := reconcileStack(t)
	env = withEnv(env, "POSTS_RECONCILE_INTERVAL", "1s", "POSTS_RECONCILE_GRACE", "500ms")
	queries := []*process{start(t, env, "serve", "query"), start(t, env, "serve", "query")}
	ids := createPosts(t, command.CommandURL, queries[0].QueryURL, 5)
	sum := func(name string, labels ...string) float64 {
		total := 0.0
		for _, q := range queries {
			total += max(scrape(t, q.QueryURL).value(name, labels...), 0)
		}
		return total
	}
	logged := func() int {
		n := 0
		for _, q := range queries {
			n += strings.Count(q.LogText(), "read model drifted from the event store")
		}
		return n
	}
	// What the posts' creation counted, should a change have taken longer than the grace.
	repairedBefore, loggedBefore := sum("hexapost_reconcile_repaired_posts_total"), logged()
	before := map[string]float64{}
	for _, c := range []string{"view_missing", "view_behind", "history_missing"} {
		before[c] = sum("hexapost_reconcile_drifted_posts_total", "cause", c)
	}
	rm := openReadModel(t, env["POSTS_MONGO_URI"])
	for _, id := range ids[1:4] {
		rm.removeView(t, id)
	}
	rm.removeHistory(t, ids[0], 2)
	const drifted = 4

	eventually(t, 30*time.Second, "the drift to be repaired", func() bool {
		return sum("hexapost_reconcile_repaired_posts_total")-repairedBefore >= drifted
	})
	for _, id := range ids {
		do(t, "GET", queries[1].QueryURL+"/posts/"+id, nil).Must(t, http.StatusOK)
	}
	if h := do(t, "GET", queries[1].QueryURL+"/posts/"+ids[0]+"/history", nil).Must(t, http.StatusOK).Items(); len(h) != 3 {
		t.Errorf("%d history entries after the repair, want 3", len(h))
	}
	// Two more passes after the repair: none of them, in either process, finds it again.
	passes := sum("hexapost_reconcile_passes_total")
	eventually(t, 30*time.Second, "two more passes", func() bool {
		return sum("hexapost_reconcile_passes_total") >= passes+2
	})
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"repaired", sum("hexapost_reconcile_repaired_posts_total") - repairedBefore, drifted},
		{"drifted, view missing", sum("hexapost_reconcile_drifted_posts_total", "cause", "view_missing") - before["view_missing"], 3},
		{"drifted, history missing", sum("hexapost_reconcile_drifted_posts_total", "cause", "history_missing") - before["history_missing"], 1},
		{"drifted, view behind", sum("hexapost_reconcile_drifted_posts_total", "cause", "view_behind") - before["view_behind"], 0},
		{"enabled", sum("hexapost_reconcile_enabled"), 2},
		{"drift lines logged", float64(logged() - loggedBefore), drifted},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v over both query servers, want %v", tt.name, tt.got, tt.want)
		}
	}
}
