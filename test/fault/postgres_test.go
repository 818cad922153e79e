package fault_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"hexapost/test/harness"
)

// refuseHistory makes the MongoDB-wire server at mongoURI — a FerretDB storing in the
// PostgreSQL database at pgURL — refuse to store a history entry of any post titled title, until
// the returned heal is called (the test's cleanup calls it too).
//
// FerretDB keeps each Mongo database as a PostgreSQL schema of the same name and each collection
// as a table named in <schema>._ferretdb_database_metadata. A trigger on the history table
// raises an exception naming the post; FerretDB answers the insert with an InternalError. That
// is an ordinary command error, neither a network error nor a timeout, so the mongo adapter does
// not wrap it in ports.ErrUnavailable: the projector spends the change's attempts on it rather
// than waiting for the read model to come back.
func refuseHistory(t *testing.T, pgURL, mongoURI, title string) (heal func() error) {
	t.Helper()
	u, err := url.Parse(mongoURI)
	if err != nil {
		t.Fatal(err)
	}
	schema := quoteIdent(strings.TrimPrefix(u.Path, "/"))
	table, err := harness.Psql(pgURL, fmt.Sprintf(
		`SELECT _jsonb->>'table' FROM %s._ferretdb_database_metadata WHERE _jsonb->>'_id' = 'history'`, schema))
	if err != nil {
		t.Fatalf("the history collection's table: %v", err)
	}
	if table == "" {
		t.Fatalf("no history collection in %s yet", schema)
	}
	history := schema + "." + quoteIdent(table)
	_, err = harness.Psql(pgURL, fmt.Sprintf(`
CREATE FUNCTION %[1]s.refuse_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW._jsonb->'state'->>'title' = %[2]s THEN
		RAISE EXCEPTION 'fault suite refuses the history of post %%', NEW._jsonb->>'post_id';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER refuse_history BEFORE INSERT OR UPDATE ON %[3]s
	FOR EACH ROW EXECUTE FUNCTION %[1]s.refuse_history();`, schema, quoteLiteral(title), history))
	if err != nil {
		t.Fatalf("install the trigger: %v", err)
	}
	heal = func() error {
		_, err := harness.Psql(pgURL, fmt.Sprintf(`DROP TRIGGER IF EXISTS refuse_history ON %s;
DROP FUNCTION IF EXISTS %s.refuse_history();`, history, schema))
		return err
	}
	t.Cleanup(func() {
		if err := heal(); err != nil {
			t.Errorf("drop the trigger: %v", err)
		}
	})
	return heal
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
