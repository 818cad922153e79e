package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"
)

// ChangesStats tells how the GET /changes feed of the query server fares: the clients it has
// now, and how many it has cut off so far for falling too far behind.
type ChangesStats func() (clients int, cutOff uint64)

// RegisterChanges adds hexapost_changes_clients and hexapost_changes_cut_off_total, read from
// stats at each scrape.
func (m *Metrics) RegisterChanges(stats ChangesStats) error {
	for _, c := range []prom.Collector{
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: "hexapost_changes_clients",
			Help: "Clients following GET /changes on this query server.",
		}, func() float64 { n, _ := stats(); return float64(n) }),
		prom.NewCounterFunc(prom.CounterOpts{
			Name: "hexapost_changes_cut_off_total",
			Help: "GET /changes clients cut off with a reset for falling too far behind.",
		}, func() float64 { _, n := stats(); return float64(n) }),
	} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
