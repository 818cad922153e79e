package prometheus_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"hexapost/adapters/prometheus"
)

// The change feed's metrics show what its stats say at the scrape.
func TestChangesMetrics(t *testing.T) {
	t.Parallel()
	m, err := prometheus.New(prometheus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	clients, cutOff := 0, uint64(0)
	if err := m.RegisterChanges(func() (int, uint64) { return clients, cutOff }); err != nil {
		t.Fatal(err)
	}
	clients, cutOff = 1000, 3
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"hexapost_changes_clients 1000", "hexapost_changes_cut_off_total 3"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics page lacks %s", want)
		}
	}
}
